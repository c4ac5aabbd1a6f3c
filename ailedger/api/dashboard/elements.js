var ne, h, Ae, T, be, Ue, De, oe, W, z, Pe, _e, le, se, X = {}, Y = [], Ve = /acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i, re = Array.isArray;
function j(t, e) {
  for (var n in e) t[n] = e[n];
  return t;
}
function ue(t) {
  t && t.parentNode && t.parentNode.removeChild(t);
}
function Ge(t, e, n) {
  var o, i, a, l = {};
  for (a in e) a == "key" ? o = e[a] : a == "ref" ? i = e[a] : l[a] = e[a];
  if (arguments.length > 2 && (l.children = arguments.length > 3 ? ne.call(arguments, 2) : n), typeof t == "function" && t.defaultProps != null) for (a in t.defaultProps) l[a] === void 0 && (l[a] = t.defaultProps[a]);
  return q(t, l, o, i, null);
}
function q(t, e, n, o, i) {
  var a = { type: t, props: e, key: n, ref: o, __k: null, __: null, __b: 0, __e: null, __c: null, constructor: void 0, __v: i ?? ++Ae, __i: -1, __u: 0 };
  return i == null && h.vnode != null && h.vnode(a), a;
}
function M(t) {
  return t.children;
}
function J(t, e) {
  this.props = t, this.context = e;
}
function U(t, e) {
  if (e == null) return t.__ ? U(t.__, t.__i + 1) : null;
  for (var n; e < t.__k.length; e++) if ((n = t.__k[e]) != null && n.__e != null) return n.__e;
  return typeof t.type == "function" ? U(t) : null;
}
function Qe(t) {
  if (t.__P && t.__d) {
    var e = t.__v, n = e.__e, o = [], i = [], a = j({}, e);
    a.__v = e.__v + 1, h.vnode && h.vnode(a), pe(t.__P, a, e, t.__n, t.__P.namespaceURI, 32 & e.__u ? [n] : null, o, n ?? U(e), !!(32 & e.__u), i), a.__v = e.__v, a.__.__k[a.__i] = a, Me(o, a, i), e.__e = e.__ = null, a.__e != n && Fe(a);
  }
}
function Fe(t) {
  if ((t = t.__) != null && t.__c != null) return t.__e = t.__c.base = null, t.__k.some(function(e) {
    if (e != null && e.__e != null) return t.__e = t.__c.base = e.__e;
  }), Fe(t);
}
function ve(t) {
  (!t.__d && (t.__d = !0) && T.push(t) && !Z.__r++ || be != h.debounceRendering) && ((be = h.debounceRendering) || Ue)(Z);
}
function Z() {
  try {
    for (var t, e = 1; T.length; ) T.length > e && T.sort(De), t = T.shift(), e = T.length, Qe(t);
  } finally {
    T.length = Z.__r = 0;
  }
}
function ze(t, e, n, o, i, a, l, d, u, s, c) {
  var f, r, p, g, w, x, b = o && o.__k || Y, m = e.length;
  for (u = Xe(n, e, b, u, m), f = 0; f < m; f++) (p = n.__k[f]) != null && (r = p.__i != -1 && b[p.__i] || X, p.__i = f, x = pe(t, p, r, i, a, l, d, u, s, c), g = p.__e, p.ref && r.ref != p.ref && (r.ref && fe(r.ref, null, p), c.push(p.ref, p.__c || g, p)), w == null && g != null && (w = g), 4 & p.__u ? (u = He(p, u, t), r.__e && (r.__e = null)) : typeof p.type == "function" && x !== void 0 ? u = x : g && (u = g.nextSibling), p.__u &= -7);
  return n.__e = w, u;
}
function Xe(t, e, n, o, i) {
  var a, l, d, u, s, c = n.length, f = c, r = 0;
  for (t.__k = new Array(i), a = 0; a < i; a++) (l = e[a]) != null && typeof l != "boolean" && typeof l != "function" ? (typeof l == "string" || typeof l == "number" || typeof l == "bigint" || l.constructor == String ? l = t.__k[a] = q(null, l, null, null, null) : re(l) ? l = t.__k[a] = q(M, { children: l }, null, null, null) : l.constructor === void 0 && l.__b > 0 ? l = t.__k[a] = q(l.type, l.props, l.key, l.ref ? l.ref : null, l.__v) : t.__k[a] = l, u = a + r, l.__ = t, l.__b = t.__b + 1, d = null, (s = l.__i = Ye(l, n, u, f)) != -1 && (f--, (d = n[s]) && (d.__u |= 2)), d == null || d.__v == null ? (s == -1 && (i > c ? r-- : i < c && r++), typeof l.type != "function" && (l.__u |= 4)) : s != u && (s == u - 1 ? r-- : s == u + 1 ? r++ : (s > u ? r-- : r++, l.__u |= 4))) : t.__k[a] = null;
  if (f) for (a = 0; a < c; a++) (d = n[a]) != null && (2 & d.__u) == 0 && (d.__e == o && (o = U(d)), Re(d, d));
  return o;
}
function He(t, e, n) {
  var o, i;
  if (typeof t.type == "function") {
    for (o = t.__k, i = 0; o && i < o.length; i++) o[i] && (o[i].__ = t, e = He(o[i], e, n));
    return e;
  }
  t.__e != e && (e && t.type && !e.parentNode && (e = U(t)), e = n.insertBefore(t.__e, e || null));
  do
    e = e && e.nextSibling;
  while (e != null && e.nodeType == 8);
  return e;
}
function Ye(t, e, n, o) {
  var i, a, l, d = t.key, u = t.type, s = e[n], c = s != null && (2 & s.__u) == 0;
  if (s === null && d == null || c && d == s.key && u == s.type) return n;
  if (o > (c ? 1 : 0)) {
    for (i = n - 1, a = n + 1; i >= 0 || a < e.length; ) if ((s = e[l = i >= 0 ? i-- : a++]) != null && (2 & s.__u) == 0 && d == s.key && u == s.type) return l;
  }
  return -1;
}
function xe(t, e, n) {
  e[0] == "-" ? t.setProperty(e, n ?? "") : t[e] = n == null ? "" : typeof n != "number" || Ve.test(e) ? n : n + "px";
}
function O(t, e, n, o, i) {
  var a, l;
  e: if (e == "style") if (typeof n == "string") t.style.cssText = n;
  else {
    if (typeof o == "string" && (t.style.cssText = o = ""), o) for (e in o) n && e in n || xe(t.style, e, "");
    if (n) for (e in n) o && n[e] == o[e] || xe(t.style, e, n[e]);
  }
  else if (e[0] == "o" && e[1] == "n") a = e != (e = e.replace(Pe, "$1")), l = e.toLowerCase(), e = l in t || e == "onFocusOut" || e == "onFocusIn" ? l.slice(2) : e.slice(2), t.l || (t.l = {}), t.l[e + a] = n, n ? o ? n[z] = o[z] : (n[z] = _e, t.addEventListener(e, a ? se : le, a)) : t.removeEventListener(e, a ? se : le, a);
  else {
    if (i == "http://www.w3.org/2000/svg") e = e.replace(/xlink(H|:h)/, "h").replace(/sName$/, "s");
    else if (e != "width" && e != "height" && e != "href" && e != "list" && e != "form" && e != "tabIndex" && e != "download" && e != "rowSpan" && e != "colSpan" && e != "role" && e != "popover" && e in t) try {
      t[e] = n ?? "";
      break e;
    } catch {
    }
    typeof n == "function" || (n == null || n === !1 && e[4] != "-" ? t.removeAttribute(e) : t.setAttribute(e, e == "popover" && n == 1 ? "" : n));
  }
}
function ye(t) {
  return function(e) {
    if (this.l) {
      var n = this.l[e.type + t];
      if (e[W] == null) e[W] = _e++;
      else if (e[W] < n[z]) return;
      return n(h.event ? h.event(e) : e);
    }
  };
}
function pe(t, e, n, o, i, a, l, d, u, s) {
  var c, f, r, p, g, w, x, b, m, $, P, A, F, ge, R, ae, S = e.type;
  if (e.constructor !== void 0) return null;
  128 & n.__u && (u = !!(32 & n.__u), a = [d = e.__e = n.__e]), (c = h.__b) && c(e);
  e: if (typeof S == "function") {
    f = l.length;
    try {
      if (m = e.props, $ = S.prototype && S.prototype.render, P = (c = S.contextType) && o[c.__c], A = c ? P ? P.props.value : c.__ : o, n.__c ? b = (r = e.__c = n.__c).__ = r.__E : ($ ? e.__c = r = new S(m, A) : (e.__c = r = new J(m, A), r.constructor = S, r.render = et), P && P.sub(r), r.state || (r.state = {}), r.__n = o, p = r.__d = !0, r.__h = [], r._sb = []), $ && r.__s == null && (r.__s = r.state), $ && S.getDerivedStateFromProps != null && (r.__s == r.state && (r.__s = j({}, r.__s)), j(r.__s, S.getDerivedStateFromProps(m, r.__s))), g = r.props, w = r.state, r.__v = e, p) $ && S.getDerivedStateFromProps == null && r.componentWillMount != null && r.componentWillMount(), $ && r.componentDidMount != null && r.__h.push(r.componentDidMount);
      else {
        if ($ && S.getDerivedStateFromProps == null && m !== g && r.componentWillReceiveProps != null && r.componentWillReceiveProps(m, A), e.__v == n.__v || !r.__e && r.shouldComponentUpdate != null && r.shouldComponentUpdate(m, r.__s, A) === !1) {
          e.__v != n.__v && (r.props = m, r.state = r.__s, r.__d = !1), e.__e = n.__e, e.__k = n.__k, e.__k.some(function(D) {
            D && (D.__ = e);
          }), Y.push.apply(r.__h, r._sb), r._sb = [], r.__h.length && l.push(r), d = U(n);
          break e;
        }
        r.componentWillUpdate != null && r.componentWillUpdate(m, r.__s, A), $ && r.componentDidUpdate != null && r.__h.push(function() {
          r.componentDidUpdate(g, w, x);
        });
      }
      if (r.context = A, r.props = m, r.__P = t, r.__e = !1, F = h.__r, ge = 0, $) r.state = r.__s, r.__d = !1, F && F(e), c = r.render(r.props, r.state, r.context), Y.push.apply(r.__h, r._sb), r._sb = [];
      else do
        r.__d = !1, F && F(e), c = r.render(r.props, r.state, r.context), r.state = r.__s;
      while (r.__d && ++ge < 25);
      r.state = r.__s, r.getChildContext != null && (o = j(j({}, o), r.getChildContext())), $ && !p && r.getSnapshotBeforeUpdate != null && (x = r.getSnapshotBeforeUpdate(g, w)), R = c != null && c.type === M && c.key == null ? Le(c.props.children) : c, d = ze(t, re(R) ? R : [R], e, n, o, i, a, l, d, u, s), r.base = e.__e, e.__u &= -161, r.__h.length && l.push(r), b && (r.__E = r.__ = null);
    } catch (D) {
      if (l.length = f, e.__v = null, u || a != null) {
        if (D.then) {
          for (e.__u |= u ? 160 : 128; d && d.nodeType == 8 && d.nextSibling; ) d = d.nextSibling;
          a != null && (a[a.indexOf(d)] = null), e.__e = d;
        } else if (a != null) for (ae = a.length; ae--; ) ue(a[ae]);
      } else e.__e = n.__e;
      e.__k == null && (e.__k = n.__k || []), D.then || Ee(e), h.__e(D, e, n);
    }
  } else a == null && e.__v == n.__v ? (e.__k = n.__k, e.__e = n.__e) : d = e.__e = Ze(n.__e, e, n, o, i, a, l, u, s);
  return (c = h.diffed) && c(e), 128 & e.__u ? void 0 : d;
}
function Ee(t) {
  t && (t.__c && (t.__c.__e = !0), t.__k && t.__k.some(Ee));
}
function Me(t, e, n) {
  for (var o = 0; o < n.length; o++) fe(n[o], n[++o], n[++o]);
  h.__c && h.__c(e, t), t.some(function(i) {
    try {
      t = i.__h, i.__h = [], t.some(function(a) {
        a.call(i);
      });
    } catch (a) {
      h.__e(a, i.__v);
    }
  });
}
function Le(t) {
  return typeof t != "object" || t == null || t.__b > 0 ? t : re(t) ? t.map(Le) : t.constructor !== void 0 ? null : j({}, t);
}
function Ze(t, e, n, o, i, a, l, d, u) {
  var s, c, f, r, p, g, w, x = n.props || X, b = e.props, m = e.type;
  if (m == "svg" ? i = "http://www.w3.org/2000/svg" : m == "math" ? i = "http://www.w3.org/1998/Math/MathML" : i || (i = "http://www.w3.org/1999/xhtml"), a != null) {
    for (s = 0; s < a.length; s++) if ((p = a[s]) && "setAttribute" in p == !!m && (m ? p.localName == m : p.nodeType == 3)) {
      t = p, a[s] = null;
      break;
    }
  }
  if (t == null) {
    if (m == null) return document.createTextNode(b);
    t = document.createElementNS(i, m, b.is && b), d && (h.__m && h.__m(e, a), d = !1), a = null;
  }
  if (m == null) x === b || d && t.data == b || (t.data = b);
  else {
    if (a = m == "textarea" && b.defaultValue != null ? null : a && ne.call(t.childNodes), !d && a != null) for (x = {}, s = 0; s < t.attributes.length; s++) x[(p = t.attributes[s]).name] = p.value;
    for (s in x) p = x[s], s == "dangerouslySetInnerHTML" ? f = p : s == "children" || s in b || s == "value" && "defaultValue" in b || s == "checked" && "defaultChecked" in b || O(t, s, null, p, i);
    for (s in b) p = b[s], s == "children" ? r = p : s == "dangerouslySetInnerHTML" ? c = p : s == "value" ? g = p : s == "checked" ? w = p : d && typeof p != "function" || x[s] === p || O(t, s, p, x[s], i);
    if (c) d || f && (c.__html == f.__html || c.__html == t.innerHTML) || (t.innerHTML = c.__html), e.__k = [];
    else if (f && (t.innerHTML = ""), ze(e.type == "template" ? t.content : t, re(r) ? r : [r], e, n, o, m == "foreignObject" ? "http://www.w3.org/1999/xhtml" : i, a, l, a ? a[0] : n.__k && U(n, 0), d, u), a != null) for (s = a.length; s--; ) ue(a[s]);
    d && m != "textarea" || (s = "value", m == "progress" && g == null ? t.removeAttribute("value") : g != null && (g !== t[s] || m == "progress" && !g || m == "option" && g != x[s]) && O(t, s, g, x[s], i), s = "checked", w != null && w != t[s] && O(t, s, w, x[s], i));
  }
  return t;
}
function fe(t, e, n) {
  try {
    if (typeof t == "function") {
      var o = typeof t.__u == "function";
      o && t.__u(), o && e == null || (t.__u = t(e));
    } else t.current = e;
  } catch (i) {
    h.__e(i, n);
  }
}
function Re(t, e, n) {
  var o, i;
  if (h.unmount && h.unmount(t), (o = t.ref) && (o.current && o.current != t.__e || fe(o, null, e)), (o = t.__c) != null) {
    if (o.componentWillUnmount) try {
      o.componentWillUnmount();
    } catch (a) {
      h.__e(a, e);
    }
    o.base = o.__P = o.__n = null;
  }
  if (o = t.__k) for (i = 0; i < o.length; i++) o[i] && Re(o[i], e, n || typeof t.type != "function");
  n || ue(t.__e), t.__c = t.__ = t.__e = void 0;
}
function et(t, e, n) {
  return this.constructor(t, n);
}
function we(t, e, n) {
  var o, i, a, l;
  e == document && (e = document.documentElement), h.__ && h.__(t, e), i = (o = !1) ? null : e.__k, a = [], l = [], pe(e, t = e.__k = Ge(M, null, [t]), i || X, X, e.namespaceURI, i ? null : e.firstChild ? ne.call(e.childNodes) : null, a, i ? i.__e : e.firstChild, o, l), Me(a, t, l), t.props.children = null;
}
ne = Y.slice, h = { __e: function(t, e, n, o) {
  for (var i, a, l; e = e.__; ) if ((i = e.__c) && !i.__) try {
    if ((a = i.constructor) && a.getDerivedStateFromError != null && (i.setState(a.getDerivedStateFromError(t)), l = i.__d), i.componentDidCatch != null && (i.componentDidCatch(t, o || {}), l = i.__d), l) return i.__E = i;
  } catch (d) {
    t = d;
  }
  throw t;
} }, Ae = 0, J.prototype.setState = function(t, e) {
  var n;
  n = this.__s != null && this.__s != this.state ? this.__s : this.__s = j({}, this.state), typeof t == "function" && (t = t(j({}, n), this.props)), t && j(n, t), t != null && this.__v && (e && this._sb.push(e), ve(this));
}, J.prototype.forceUpdate = function(t) {
  this.__v && (this.__e = !0, t && this.__h.push(t), ve(this));
}, J.prototype.render = M, T = [], Ue = typeof Promise == "function" ? Promise.prototype.then.bind(Promise.resolve()) : setTimeout, De = function(t, e) {
  return t.__v.__b - e.__v.__b;
}, Z.__r = 0, oe = Math.random().toString(8), W = "__d" + oe, z = "__a" + oe, Pe = /(PointerCapture)$|Capture$/i, _e = 0, le = ye(!1), se = ye(!0);
var tt = 0;
function _(t, e, n, o, i, a) {
  e || (e = {});
  var l, d, u = e;
  if ("ref" in u) for (d in u = {}, e) d == "ref" ? l = e[d] : u[d] = e[d];
  var s = { type: t, props: u, key: n, ref: l, __k: null, __: null, __b: 0, __e: null, __c: null, constructor: void 0, __v: --tt, __i: -1, __u: 0, __source: i, __self: a };
  if (typeof t == "function" && (l = t.defaultProps)) for (d in l) u[d] === void 0 && (u[d] = l[d]);
  return h.vnode && h.vnode(s), s;
}
class H extends Error {
  constructor(e, n) {
    super(n), this.status = e;
  }
  status;
}
class nt {
  constructor(e, n) {
    this.base = e, this.token = n;
  }
  base;
  token;
  url(e, n = {}) {
    const o = new URLSearchParams();
    for (const [a, l] of Object.entries(n))
      if (!(l == null || l === ""))
        for (const d of Array.isArray(l) ? l : [l]) o.append(a, d);
    const i = o.toString();
    return `${this.base.replace(/\/$/, "")}${e}${i ? `?${i}` : ""}`;
  }
  headers(e = {}) {
    return { Authorization: `Bearer ${this.token}`, ...e };
  }
  async request(e, n = {}, o = {}) {
    let i;
    try {
      i = await fetch(this.url(e, n), {
        ...o,
        headers: this.headers(o.headers),
        credentials: "omit"
      });
    } catch (a) {
      throw new H(0, `the API cannot be reached (${String(a)}): is \`ailedger serve\` running?`);
    }
    if (!i.ok && i.status !== 304)
      throw new H(i.status, await rt(i));
    return i;
  }
  async get(e, n = {}) {
    return await (await this.request(e, n)).json();
  }
}
async function rt(t) {
  try {
    const e = await t.json();
    if (typeof e.detail == "string") return e.detail;
    if (Array.isArray(e.detail))
      return e.detail.map((n) => `${(n.loc ?? []).join(".")}: ${n.msg ?? ""}`).join("; ");
  } catch {
  }
  return `${t.status} ${t.statusText}`;
}
const at = ":root,:host{--bg: #f5f6f8;--panel: #ffffff;--text: #1d2330;--muted: #5a6372;--border: #dde1e7;--grid: #e8ebef;--accent: #2f5fb3;--accent-bg: #e8effb;--ok: #1d7a3e;--warn: #9a5b00;--bad: #b3261e;--bar: #6f8fcf;--bar-below: #e09a3e;--mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;font:13px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--text);background:var(--bg)}@media(prefers-color-scheme:dark){:root,:host{--bg: #111318;--panel: #181b21;--text: #dfe3ea;--muted: #9aa3b2;--border: #2b3039;--grid: #252a32;--accent: #8fb2ff;--accent-bg: #1f2a40;--ok: #5cc98a;--warn: #f0b35a;--bad: #ff8a80;--bar: #6f8fcf;--bar-below: #d98c2b}}*{box-sizing:border-box}body{margin:0;background:var(--bg)}a{color:var(--accent)}code{font-family:var(--mono);font-size:12px;word-break:break-all}h1{font-size:18px;margin:0;font-weight:600}h2{font-size:13px;margin:0;font-weight:600}button,input,select{font:inherit;color:inherit}button{border:1px solid var(--accent);background:var(--accent);color:#fff;border-radius:4px;padding:4px 10px;cursor:pointer}button.ghost{background:transparent;color:var(--accent);border-color:var(--border)}button:disabled{opacity:.5;cursor:default}button.link{background:none;border:0;padding:0;color:var(--accent);text-align:left;text-decoration:underline;text-underline-offset:2px}:focus-visible{outline:2px solid var(--accent);outline-offset:2px}input,select{background:var(--panel);border:1px solid var(--border);border-radius:4px;padding:4px 6px;min-width:0}.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}.muted{color:var(--muted)}.small{font-size:12px}.error,.error-text{color:var(--bad)}.topbar{display:flex;gap:16px;align-items:center;padding:8px 16px;background:var(--panel);border-bottom:1px solid var(--border);position:sticky;top:0;z-index:5}.topbar a{text-decoration:none;color:var(--muted);font-weight:500}.topbar a[aria-current=page]{color:var(--text);box-shadow:inset 0 -2px var(--accent)}.topbar .brand{color:var(--text);font-weight:700;letter-spacing:.02em}.spacer{flex:1}main{padding:12px 16px 32px;max-width:1600px;margin:0 auto}.embedded{padding:0}.view{display:flex;flex-direction:column;gap:12px}.view-head{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;justify-content:space-between}.view-head h1 code{font-size:15px}.rangebar{display:flex;flex-wrap:wrap;gap:8px;align-items:center}.segmented{display:inline-flex;border:1px solid var(--border);border-radius:4px;overflow:hidden}.segmented button{background:var(--panel);color:var(--text);border:0;border-right:1px solid var(--border);border-radius:0}.segmented button:last-child{border-right:0}.segmented button[aria-pressed=true]{background:var(--accent-bg);color:var(--accent);font-weight:600}.custom-range{display:inline-flex;gap:4px;align-items:center}.updated{font-size:12px}.filters{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:end}.filter{display:flex;flex-direction:column;gap:2px;font-size:12px;color:var(--muted)}.filter select,.filter input{color:var(--text);font-size:13px;min-width:160px;max-width:280px}.filter.grow{flex:1}.filter.grow input{max-width:420px;width:100%}.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}.kpi{background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:8px 10px;min-width:0}.kpi-label{color:var(--muted);font-size:12px}.kpi-value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.kpi-note{color:var(--muted);font-size:11px}.panel{background:var(--panel);border:1px solid var(--border);border-radius:6px;padding:8px 10px;min-width:0}.panel-head{display:flex;align-items:center;justify-content:space-between;gap:8px;margin-bottom:6px}.panel-actions{display:flex;gap:6px}.panel-actions button{padding:1px 8px;font-size:12px}.panel.notice{border-color:var(--warn)}.panel.notice p{margin:4px 0}.needs-price{margin:4px 0 0;padding-left:18px}.grid{display:grid;gap:12px}.grid.two{grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr))}.stack{display:flex;flex-direction:column;gap:12px;min-width:0}.table-wrap{overflow-x:auto}table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}th,td{padding:3px 8px;border-bottom:1px solid var(--grid);text-align:left;vertical-align:top}th{font-weight:600;color:var(--muted);font-size:12px;white-space:nowrap}td{max-width:360px;overflow-wrap:break-word}td:first-child{min-width:8em}td code{word-break:normal}.num{text-align:right;white-space:nowrap}th.num .sort{justify-content:flex-end}tbody tr:hover{background:var(--accent-bg)}tfoot th,tfoot td{border-top:2px solid var(--border);font-weight:600;color:var(--text)}button.sort{background:none;border:0;padding:0;color:inherit;font-weight:600;display:inline-flex;gap:2px;width:100%}.arrow{font-size:9px;min-width:9px}td.empty{color:var(--muted);text-align:center;padding:12px}.chart{width:100%;min-height:200px}.chart .u-legend{font-size:11px;text-align:left}.chart .u-legend .u-marker{width:10px;height:10px}.bars{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;gap:4px}.bars li{display:grid;grid-template-columns:minmax(0,3fr) minmax(40px,2fr) auto;gap:8px;align-items:center}.bar-label{overflow-wrap:anywhere}.bar-track{background:var(--grid);height:8px;border-radius:4px;overflow:hidden}.bar{display:block;height:100%}.verdict{margin:0 0 6px;font-weight:600}.verdict.ok{color:var(--ok)}.verdict.bad{color:var(--bad)}.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:6px 12px;margin:0}.facts dt{color:var(--muted);font-size:12px}.facts dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}.dot{display:inline-block;width:8px;height:8px;border-radius:50%;background:var(--muted);margin-right:6px;vertical-align:middle}.dot.live{background:var(--ok)}.dot.polling{background:var(--warn)}.dot.error{background:var(--bad)}.status-line{margin:0;font-size:12px}.badge{white-space:nowrap;display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;font-weight:600}.badge.ok{color:var(--ok);border:1px solid currentColor}.badge.warn{color:var(--warn);border:1px solid currentColor}.badge.bad{color:var(--bad);border:1px solid currentColor}.budget-list{list-style:none;margin:0;padding:0;display:grid;gap:12px}.budget-head{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 10px;margin-bottom:4px}.budget-scope{font-weight:600;overflow-wrap:anywhere}.budget-track{display:block}.budget-track .bar{background:var(--bar)}.budget.projected .budget-track .bar{background:var(--warn)}.budget.over .budget-track .bar{background:var(--bad)}.budget p{margin:4px 0 0}.message{overflow-wrap:anywhere}.histograms{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px}.histogram{margin:0;min-width:0}.histogram figcaption{margin-bottom:4px;overflow-wrap:anywhere}.hist-bars{position:relative;height:64px;display:flex;align-items:flex-end;gap:1px;border-bottom:1px solid var(--border)}.hbar{flex:1;background:var(--bar);min-height:0}.hbar.below{background:var(--bar-below)}.threshold{position:absolute;top:-4px;bottom:0;width:0;border-left:2px solid var(--bad)}.threshold.configured{border-left:2px dashed var(--muted)}.hist-axis{display:flex;justify-content:space-between;font-size:10px;color:var(--muted)}.whatif{display:flex;flex-direction:column;font-size:12px;gap:2px;margin-top:4px}.whatif input{width:100%;padding:0}.whatif-result{margin:2px 0 0;font-size:12px}.login{display:flex;justify-content:center;padding-top:12vh}.login-form{width:min(360px,100%);display:flex;flex-direction:column;gap:10px;padding:20px}.login-form .filter input{max-width:none}@media(max-width:640px){main{padding:8px}.topbar{gap:10px;padding:8px}.kpis{grid-template-columns:repeat(2,minmax(0,1fr))}.kpi-value{font-size:17px}.filter select,.filter input{min-width:0;width:100%}.filters .filter{flex:1 1 45%}:is([data-table=active-alerts],[data-table=alert-history]) thead{display:none}:is([data-table=active-alerts],[data-table=alert-history]) tr[data-row]{display:block;padding:6px 0;border-bottom:1px solid var(--border)}:is([data-table=active-alerts],[data-table=alert-history]) td{display:inline;border:0;padding:0 8px 0 0;white-space:normal}:is([data-table=active-alerts],[data-table=alert-history]) td[data-col=summary]{display:block;padding-top:2px}}", N = "—", I = typeof navigator > "u" ? "en-US" : navigator.language, ot = new Intl.NumberFormat(I, { style: "currency", currency: "USD" }), it = new Intl.NumberFormat(I, {
  style: "currency",
  currency: "USD",
  maximumSignificantDigits: 3
}), me = new Intl.NumberFormat(I, { maximumFractionDigits: 0 }), lt = new Intl.NumberFormat(I, { notation: "compact", maximumFractionDigits: 1 }), st = new Intl.NumberFormat(I, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2
}), ct = new Intl.NumberFormat(I, { maximumFractionDigits: 1 });
function L(t) {
  if (t == null || t === "") return null;
  const e = typeof t == "number" ? t : Number(t);
  return Number.isFinite(e) ? e : null;
}
function ce(t) {
  const e = L(t);
  return e === null ? N : e !== 0 && Math.abs(e) < 0.01 ? it.format(e) : ot.format(e);
}
function K(t, e, n) {
  return e > 0 && n >= e ? N : ce(t);
}
function k(t) {
  const e = L(t);
  return e === null ? N : me.format(e);
}
function V(t) {
  const e = L(t);
  return e === null ? N : Math.abs(e) < 1e4 ? me.format(e) : lt.format(e);
}
function dt(t) {
  const e = L(t);
  return e === null ? N : st.format(e);
}
function ee(t) {
  const e = L(t);
  if (e === null) return N;
  if (e < 1e3) return `${me.format(e)} ms`;
  const n = e / 1e3;
  if (n < 60) return `${ct.format(n)} s`;
  const o = Math.floor(n / 60);
  if (o < 60) return `${o} min ${Math.round(n - o * 60)} s`;
  const i = Math.floor(o / 60);
  return i < 48 ? `${i} h ${o - i * 60} min` : `${Math.floor(i / 24)} d ${i % 24} h`;
}
const _t = new Intl.DateTimeFormat(I, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit"
}), ut = new Intl.DateTimeFormat(I, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit"
});
function pt(t) {
  return t ? _t.format(new Date(t)) : N;
}
function ft(t) {
  return ut.format(t);
}
var E, v, ie, ke, te = 0, Oe = [], y = h, $e = y.__b, Se = y.__r, Ce = y.diffed, je = y.__c, Ne = y.unmount, Te = y.__;
function he(t, e) {
  y.__h && y.__h(v, t, te || e), te = 0;
  var n = v.__H || (v.__H = { __: [], __h: [] });
  return t >= n.__.length && n.__.push({}), n.__[t];
}
function G(t) {
  return te = 1, mt(qe, t);
}
function mt(t, e, n) {
  var o = he(E++, 2);
  if (o.t = t, !o.__c && (o.__ = [qe(void 0, e), function(d) {
    var u = o.__N ? o.__N[0] : o.__[0], s = o.t(u, d);
    u !== s && (o.__N = [s, o.__[1]], o.__c.setState({}));
  }], o.__c = v, !v.__f)) {
    var i = function(d, u, s) {
      if (!o.__c.__H) return !0;
      var c = !1, f = o.__c.props !== d;
      if (o.__c.__H.__.some(function(p) {
        if (p.__N) {
          c = !0;
          var g = p.__[0];
          p.__ = p.__N, p.__N = void 0, g !== p.__[0] && (f = !0);
        }
      }), a) {
        var r = a.call(this, d, u, s);
        return c ? r || f : r;
      }
      return !c || f;
    };
    v.__f = !0;
    var a = v.shouldComponentUpdate, l = v.componentWillUpdate;
    v.componentWillUpdate = function(d, u, s) {
      if (this.__e) {
        var c = a;
        a = void 0, i(d, u, s), a = c;
      }
      l && l.call(this, d, u, s);
    }, v.shouldComponentUpdate = i;
  }
  return o.__N || o.__;
}
function Be(t, e) {
  var n = he(E++, 3);
  !y.__s && We(n.__H, e) && (n.__ = t, n.u = e, v.__H.__h.push(n));
}
function ht(t) {
  return te = 5, gt(function() {
    return { current: t };
  }, []);
}
function gt(t, e) {
  var n = he(E++, 7);
  return We(n.__H, e) && (n.__ = t(), n.__H = e, n.__h = t), n.__;
}
function bt() {
  for (var t; t = Oe.shift(); ) {
    var e = t.__H;
    if (t.__P && e) try {
      e.__h.some(Q), e.__h.some(de), e.__h = [];
    } catch (n) {
      e.__h = [], y.__e(n, t.__v);
    }
  }
}
y.__b = function(t) {
  v = null, $e && $e(t);
}, y.__ = function(t, e) {
  t && e.__k && e.__k.__m && (t.__m = e.__k.__m), Te && Te(t, e);
}, y.__r = function(t) {
  Se && Se(t), E = 0;
  var e = (v = t.__c).__H;
  e && (ie === v ? (e.__h = [], v.__h = [], e.__.some(function(n) {
    n.__N && (n.__ = n.__N), n.u = n.__N = void 0;
  })) : (e.__h.some(Q), e.__h.some(de), e.__h = [], E = 0)), ie = v;
}, y.diffed = function(t) {
  Ce && Ce(t);
  var e = t.__c;
  e && e.__H && (e.__H.__h.length && (Oe.push(e) !== 1 && ke === y.requestAnimationFrame || ((ke = y.requestAnimationFrame) || vt)(bt)), e.__H.__.some(function(n) {
    n.u && (n.__H = n.u, n.u = void 0);
  })), ie = v = null;
}, y.__c = function(t, e) {
  e.some(function(n) {
    try {
      n.__h.some(Q), n.__h = n.__h.filter(function(o) {
        return !o.__ || de(o);
      });
    } catch (o) {
      e.some(function(i) {
        i.__h && (i.__h = []);
      }), e = [], y.__e(o, n.__v);
    }
  }), je && je(t, e);
}, y.unmount = function(t) {
  Ne && Ne(t);
  var e, n = t.__c;
  n && n.__H && (n.__H.__.some(function(o) {
    try {
      Q(o);
    } catch (i) {
      e = i;
    }
  }), n.__H = void 0, e && y.__e(e, n.__v));
};
var Ie = typeof requestAnimationFrame == "function";
function vt(t) {
  var e, n = function() {
    clearTimeout(o), Ie && cancelAnimationFrame(e), setTimeout(t);
  }, o = setTimeout(n, 35);
  Ie && (e = requestAnimationFrame(n));
}
function Q(t) {
  var e = v, n = t.__c;
  typeof n == "function" && (t.__c = void 0, n()), v = e;
}
function de(t) {
  var e = v;
  t.__c = t.__(), v = e;
}
function We(t, e) {
  return !t || t.length !== e.length || e.some(function(n, o) {
    return n !== t[o];
  });
}
function qe(t, e) {
  return typeof e == "function" ? e(t) : e;
}
function xt(t, e, n = 0, o) {
  const [i, a] = G({
    data: null,
    error: null,
    loading: t !== null,
    updatedAt: null
  }), l = ht(e);
  return l.current = e, Be(() => {
    if (t === null) return;
    let d = !0, u;
    const s = async () => {
      a((c) => ({ ...c, loading: !0 }));
      try {
        const c = await l.current();
        d && a({ data: c, error: null, loading: !1, updatedAt: /* @__PURE__ */ new Date() });
      } catch (c) {
        const f = c instanceof H ? c : new H(0, String(c));
        d && a((r) => ({ ...r, error: f, loading: !1 })), f.status;
      }
      d && n > 0 && (u = setTimeout(s, n));
    };
    return s(), () => {
      d = !1, clearTimeout(u);
    };
  }, [t, n]), i;
}
function yt(t) {
  return `/images/${t.split("/").map(encodeURIComponent).join("/")}`;
}
function wt(t) {
  return `/jobs/${encodeURIComponent(t)}`;
}
function kt(t, e) {
  const n = (o) => {
    const i = o == null ? "" : String(o), a = /^[=+\-@\t\r]/.test(i) && !/^-?\d/.test(i) ? `'${i}` : i;
    return /[",\n\r]/.test(a) ? `"${a.replaceAll('"', '""')}"` : a;
  };
  return [t, ...e].map((o) => o.map(n).join(",")).join(`\r
`) + `\r
`;
}
function $t(t, e) {
  const n = URL.createObjectURL(new Blob([e], { type: "text/csv;charset=utf-8" })), o = document.createElement("a");
  o.href = n, o.download = t, document.body.append(o), o.click(), o.remove(), setTimeout(() => URL.revokeObjectURL(n), 1e3);
}
function St(t, e, n) {
  const o = n && e.find((a) => a.key === n.key);
  if (!n || !o) return t;
  const i = t.map((a, l) => ({ row: a, i: l, v: o.value(a) }));
  return i.sort((a, l) => {
    const d = a.v, u = l.v;
    if (d === u) return a.i - l.i;
    if (d == null || d === "") return 1;
    if (u == null || u === "") return -1;
    const s = Number(d), c = Number(u), f = o.numeric && !Number.isNaN(s) && !Number.isNaN(c) ? s - c : String(d).localeCompare(String(u));
    return (n.descending ? -f : f) || a.i - l.i;
  }), i.map((a) => a.row);
}
function Ct(t, e) {
  return kt(
    e.map((n) => n.key),
    t.map((n) => e.map((o) => o.value(n)))
  );
}
function Je(t) {
  const e = t.sort ?? null, n = St(t.rows, t.columns, e);
  return /* @__PURE__ */ _("section", { class: "panel", "data-table": t.name, children: [
    /* @__PURE__ */ _("header", { class: "panel-head", children: [
      /* @__PURE__ */ _("h2", { children: t.caption }),
      /* @__PURE__ */ _("div", { class: "panel-actions", children: [
        t.actions,
        /* @__PURE__ */ _(
          "button",
          {
            type: "button",
            class: "ghost",
            "data-csv": t.name,
            disabled: n.length === 0,
            onClick: () => $t(t.filename ?? `${t.name}.csv`, Ct(n, t.columns)),
            children: "CSV"
          }
        )
      ] })
    ] }),
    /* @__PURE__ */ _("div", { class: "table-wrap", children: /* @__PURE__ */ _("table", { children: [
      /* @__PURE__ */ _("thead", { children: /* @__PURE__ */ _("tr", { children: t.columns.map((o) => {
        const i = e?.key === o.key, a = i ? e.descending ? "descending" : "ascending" : void 0;
        return /* @__PURE__ */ _(
          "th",
          {
            scope: "col",
            class: o.numeric ? "num" : void 0,
            "aria-sort": a,
            title: o.title,
            children: t.onSort ? /* @__PURE__ */ _(
              "button",
              {
                type: "button",
                class: "sort",
                "data-sort": o.key,
                onClick: () => t.onSort({ key: o.key, descending: i ? !e.descending : !0 }),
                children: [
                  o.label,
                  /* @__PURE__ */ _("span", { "aria-hidden": "true", class: "arrow", children: i ? e.descending ? "▼" : "▲" : "" })
                ]
              }
            ) : o.label
          },
          o.key
        );
      }) }) }),
      /* @__PURE__ */ _("tbody", { children: n.length === 0 ? /* @__PURE__ */ _("tr", { children: /* @__PURE__ */ _("td", { class: "empty", colSpan: t.columns.length, children: t.empty ?? "No calls in this range." }) }) : n.map((o) => /* @__PURE__ */ _("tr", { "data-row": t.rowKey(o), children: t.columns.map((i) => {
        const a = i.value(o);
        return /* @__PURE__ */ _(
          "td",
          {
            class: i.numeric ? "num" : void 0,
            "data-col": i.key,
            "data-value": a == null ? "" : String(a),
            children: i.render ? i.render(o) : a == null ? "" : String(a)
          },
          i.key
        );
      }) }, t.rowKey(o))) }),
      t.footer
    ] }) })
  ] });
}
const jt = 1e3;
function Nt(t, e, n) {
  const o = new AbortController();
  let i = 0, a = !1;
  const l = (s) => {
    i = s.offset + s.calls.length, n.onCalls(s);
  }, d = async () => {
    const s = await t.request(
      `/api/jobs/${encodeURIComponent(e)}/events`,
      { offset: String(i) },
      { signal: o.signal, headers: { Accept: "text/event-stream" } }
    );
    if (!s.body) return !1;
    n.onState("live");
    const c = s.body.pipeThrough(new TextDecoderStream()).getReader();
    let f = "";
    for (; ; ) {
      const { value: r, done: p } = await c.read();
      if (p) return !0;
      f += r;
      let g;
      for (; (g = f.indexOf(`

`)) >= 0; ) {
        const w = f.slice(0, g);
        f = f.slice(g + 2);
        const x = w.split(`
`).filter((b) => b.startsWith("data:")).map((b) => b.slice(5).trimStart()).join(`
`);
        /^event: calls$/m.test(w) && x && l(JSON.parse(x));
      }
    }
  }, u = async () => {
    n.onState("polling");
    let s = null;
    for (; !a; ) {
      const c = s ? { "If-None-Match": s } : {}, f = await t.request(
        `/api/jobs/${encodeURIComponent(e)}/calls`,
        { offset: String(i) },
        { signal: o.signal, headers: c }
      );
      if (f.status !== 304) {
        s = f.headers.get("ETag");
        const r = await f.json();
        if (l(r), r.has_more) continue;
      }
      await new Promise((r) => setTimeout(r, jt));
    }
  };
  return (async () => {
    let s = 0;
    for (; !a; ) {
      try {
        if (await d()) {
          s = 0;
          continue;
        }
      } catch (c) {
        if (a) return;
        if (c instanceof H && c.status === 401) {
          n.onState("error", c.message);
          return;
        }
        s += 1;
      }
      if (s >= 2 || s === 0) break;
      await new Promise((c) => setTimeout(c, 500));
    }
    if (!a)
      try {
        await u();
      } catch (c) {
        a || n.onState("error", String(c.message ?? c));
      }
  })(), () => {
    a = !0, o.abort();
  };
}
function Tt(t, e) {
  if (!t || e.offset === 0) return e;
  const n = t.calls.slice(0, e.offset).concat(e.calls);
  return { ...e, offset: 0, calls: n };
}
function It(t) {
  const [e, n] = G(null), [o, i] = G({ mode: "connecting" }), [a, l] = G(null);
  Be(() => (n(null), Nt(t.api, t.jobId, {
    onCalls: (r) => {
      n((p) => Tt(p, r)), l(/* @__PURE__ */ new Date());
    },
    onState: (r, p) => i({ mode: r, detail: p })
  })), [t.api, t.jobId]);
  const d = t.linkBase ?? "", u = [
    { key: "step", label: "#", value: (r) => r.step, numeric: !0 },
    { key: "timestamp", label: "Time", value: (r) => r.timestamp, render: (r) => pt(r.timestamp) },
    { key: "task", label: "Task", value: (r) => r.task },
    { key: "model", label: "Model", value: (r) => r.model },
    {
      key: "tokens",
      label: "Tokens in / out",
      numeric: !0,
      value: (r) => (r.input_tokens ?? 0) + (r.output_tokens ?? 0),
      render: (r) => `${k(r.input_tokens)} / ${k(r.output_tokens)}`
    },
    {
      key: "cost",
      label: "Cost",
      numeric: !0,
      value: (r) => r.cost,
      render: (r) => r.cost === null ? /* @__PURE__ */ _("span", { title: "no price for this model", children: N }) : ce(r.cost)
    },
    { key: "latency_ms", label: "Latency", numeric: !0, value: (r) => r.latency_ms, render: (r) => ee(r.latency_ms) },
    { key: "confidence", label: "Confidence", numeric: !0, value: (r) => r.confidence_score, render: (r) => dt(r.confidence_score) },
    {
      key: "action",
      label: "Action",
      value: (r) => r.action,
      render: (r) => r.action === "fallback_to_rules" ? /* @__PURE__ */ _("span", { class: "badge warn", title: r.fallback_reason ?? void 0, children: "fallback" }) : r.action === "use_ai_result" ? /* @__PURE__ */ _("span", { class: "badge ok", children: "AI result" }) : N
    },
    {
      key: "detail",
      label: "Error / reason",
      value: (r) => r.error_message ?? r.fallback_reason,
      render: (r) => r.error_message ? /* @__PURE__ */ _("span", { class: "error-text", children: r.error_message }) : r.fallback_reason ?? ""
    },
    {
      key: "image_id",
      label: "Image",
      value: (r) => r.image_id,
      render: (r) => r.image_id ? /* @__PURE__ */ _("a", { href: d + yt(r.image_id), children: r.image_id }) : ""
    },
    { key: "running_cost", label: "Running total", numeric: !0, value: (r) => r.running_cost, render: (r) => ce(r.running_cost) }
  ], s = (e?.calls ?? []).map((r, p) => ({ ...r, step: p + 1 })), c = e?.totals, f = c?.first_call_at && c.last_call_at ? new Date(c.last_call_at).getTime() - new Date(c.first_call_at).getTime() : null;
  return /* @__PURE__ */ _("div", { class: "view job-view", "data-view": "job", children: [
    /* @__PURE__ */ _("header", { class: "view-head", children: [
      /* @__PURE__ */ _("h1", { children: [
        "Job ",
        /* @__PURE__ */ _("code", { "data-job-id": !0, children: t.jobId })
      ] }),
      /* @__PURE__ */ _("p", { class: "status-line", "aria-live": "polite", children: [
        /* @__PURE__ */ _("span", { class: `dot ${o.mode}`, "aria-hidden": "true" }),
        /* @__PURE__ */ _("span", { "data-live-state": o.mode, children: o.mode === "live" ? "Live: new calls appear as they are stored" : o.mode === "polling" ? "Refreshing every second" : o.mode === "error" ? `Not updating: ${o.detail ?? ""}` : "Connecting…" }),
        a && /* @__PURE__ */ _("span", { class: "muted", children: [
          " · updated ",
          ft(a)
        ] })
      ] })
    ] }),
    c && /* @__PURE__ */ _("div", { class: "kpis", children: [
      /* @__PURE__ */ _(C, { name: "calls", label: "Calls", value: c.calls, text: k(c.calls) }),
      /* @__PURE__ */ _(
        C,
        {
          name: "cost",
          label: "Cost",
          value: c.cost,
          text: K(c.cost, c.calls, c.unpriced_calls),
          note: c.unpriced_calls ? `${k(c.unpriced_calls)} unpriced` : void 0
        }
      ),
      /* @__PURE__ */ _(C, { name: "tokens", label: "Tokens", value: c.tokens, text: V(c.tokens) }),
      /* @__PURE__ */ _(C, { name: "errors", label: "Errors", value: c.errors, text: k(c.errors) }),
      /* @__PURE__ */ _(C, { name: "fallbacks", label: "Fallbacks", value: c.fallbacks, text: k(c.fallbacks) }),
      /* @__PURE__ */ _(C, { name: "span", label: "Duration", value: f, text: ee(f) })
    ] }),
    /* @__PURE__ */ _(
      Je,
      {
        name: "job-calls",
        caption: t.embedded ? "AI calls" : "AI calls, in order",
        columns: u,
        rows: s,
        rowKey: (r) => r.id,
        filename: `job-${t.jobId}.csv`,
        empty: e ? "No calls recorded for this job yet." : "Loading…"
      }
    )
  ] });
}
function C(t) {
  return /* @__PURE__ */ _("div", { class: "kpi", "data-kpi": t.name, "data-value": t.value ?? "", title: t.title, children: [
    /* @__PURE__ */ _("div", { class: "kpi-label", children: t.label }),
    /* @__PURE__ */ _("div", { class: "kpi-value", children: t.text }),
    t.note && /* @__PURE__ */ _("div", { class: "kpi-note", children: t.note })
  ] });
}
function At(t) {
  const e = xt(
    `${t.api.base}|${t.imageId}`,
    () => (
      // One segment, "/" and "." included: the API's path takes any text before /ai-costs.
      t.api.get(`/api/admin/images/${encodeURIComponent(t.imageId)}/ai-costs`)
    )
  ), n = t.linkBase ?? "", o = [
    { key: "task", label: "Step", value: (l) => l.task },
    { key: "models", label: "Models", value: (l) => l.models.join(" "), render: (l) => l.models.join(", ") },
    { key: "calls", label: "Calls", numeric: !0, value: (l) => l.calls, render: (l) => k(l.calls) },
    { key: "tokens", label: "Tokens", numeric: !0, value: (l) => l.tokens, render: (l) => V(l.tokens) },
    { key: "latency_ms", label: "Latency (sum)", numeric: !0, value: (l) => l.latency_ms, render: (l) => ee(l.latency_ms) },
    {
      key: "cost",
      label: "Cost",
      numeric: !0,
      value: (l) => l.unpriced_calls >= l.calls ? null : l.cost,
      render: (l) => K(l.cost, l.calls, l.unpriced_calls)
    }
  ], i = e.data, a = i?.total;
  return /* @__PURE__ */ _("div", { class: "view image-view", "data-view": "image", children: [
    /* @__PURE__ */ _("header", { class: "view-head", children: [
      /* @__PURE__ */ _("h1", { children: [
        "Image ",
        /* @__PURE__ */ _("code", { "data-image-id": !0, children: t.imageId })
      ] }),
      e.error && /* @__PURE__ */ _("p", { class: "error", role: "alert", children: e.error.message })
    ] }),
    a && /* @__PURE__ */ _("div", { class: "kpis", children: [
      /* @__PURE__ */ _(
        C,
        {
          name: "cost",
          label: "Total cost",
          value: a.cost,
          text: K(a.cost, a.calls, a.unpriced_calls),
          note: a.unpriced_calls ? `${k(a.unpriced_calls)} unpriced` : void 0
        }
      ),
      /* @__PURE__ */ _(C, { name: "calls", label: "Calls", value: a.calls, text: k(a.calls) }),
      /* @__PURE__ */ _(C, { name: "tokens", label: "Tokens", value: a.tokens, text: V(a.tokens) }),
      /* @__PURE__ */ _(C, { name: "steps", label: "Steps", value: i.steps.length, text: k(i.steps.length) })
    ] }),
    /* @__PURE__ */ _(
      Je,
      {
        name: "image-steps",
        caption: "Cost per step",
        columns: o,
        rows: i?.steps ?? [],
        rowKey: (l) => l.task,
        filename: "image-steps.csv",
        empty: i ? "No calls recorded for this image." : "Loading…",
        footer: a && i.steps.length > 0 ? /* @__PURE__ */ _("tfoot", { children: /* @__PURE__ */ _("tr", { "data-row": "total", children: [
          /* @__PURE__ */ _("th", { scope: "row", children: "Total" }),
          /* @__PURE__ */ _("td", {}),
          /* @__PURE__ */ _("td", { class: "num", children: k(a.calls) }),
          /* @__PURE__ */ _("td", { class: "num", children: V(a.tokens) }),
          /* @__PURE__ */ _("td", { class: "num", children: ee(a.latency_ms) }),
          /* @__PURE__ */ _("td", { class: "num", "data-col": "cost", "data-value": a.cost, children: K(a.cost, a.calls, a.unpriced_calls) })
        ] }) }) : void 0
      }
    ),
    i && i.job_ids.length > 0 && !t.embedded && /* @__PURE__ */ _("p", { class: "muted", children: [
      "Part of ",
      i.job_ids.length === 1 ? "job" : "jobs",
      " ",
      i.job_ids.map((l, d) => /* @__PURE__ */ _(M, { children: [
        d > 0 && ", ",
        /* @__PURE__ */ _("a", { href: n + wt(l), children: l })
      ] }))
    ] })
  ] });
}
let B = null;
class Ke extends HTMLElement {
  static observedAttributes = ["api-base", "token", "job-id", "image-id"];
  root;
  constructor() {
    super(), this.root = this.attachShadow({ mode: "open" }), B ??= new CSSStyleSheet(), B.cssRules.length === 0 && B.replaceSync(at), this.root.adoptedStyleSheets = [B];
  }
  connectedCallback() {
    this.update();
  }
  attributeChangedCallback() {
    this.isConnected && this.update();
  }
  disconnectedCallback() {
    we(null, this.root);
  }
  api() {
    return new nt(this.getAttribute("api-base") ?? "", this.getAttribute("token") ?? "");
  }
  update() {
    const e = this.api();
    we(/* @__PURE__ */ _("div", { class: "embedded", children: this.view(e) }), this.root);
  }
}
class Ut extends Ke {
  view(e) {
    const n = this.getAttribute("job-id");
    return n ? /* @__PURE__ */ _(It, { api: e, jobId: n, linkBase: e.base, embedded: !0 }) : null;
  }
}
class Dt extends Ke {
  view(e) {
    const n = this.getAttribute("image-id");
    return n ? /* @__PURE__ */ _(At, { api: e, imageId: n, linkBase: e.base, embedded: !0 }) : null;
  }
}
customElements.get("ailedger-job-costs") || customElements.define("ailedger-job-costs", Ut);
customElements.get("ailedger-image-costs") || customElements.define("ailedger-image-costs", Dt);
export {
  Dt as ImageCostsElement,
  Ut as JobCostsElement
};
