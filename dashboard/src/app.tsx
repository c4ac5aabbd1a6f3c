// The dashboard's shell: sign-in with the API token, navigation, and the view the URL names.
import { useMemo, useState } from "preact/hooks";
import { Api, ApiError, storedToken, storeToken } from "./api";
import { parseRoute, useLocation } from "./route";
import { BudgetsView } from "./views/budgets";
import { ImageView } from "./views/image";
import { JobView } from "./views/job";
import { JobsView } from "./views/jobs";
import { Overview } from "./views/overview";

export function App() {
  const [token, setToken] = useState<string | null>(storedToken());
  const [refused, setRefused] = useState<string | null>(null);
  const loc = useLocation();
  const api = useMemo(() => (token === null ? null : new Api("", token)), [token]);
  const signOut = (reason: string | null = null) => {
    storeToken(null);
    setToken(null);
    setRefused(reason);
  };
  if (api === null) {
    return (
      <Login
        refused={refused}
        onToken={(t) => {
          storeToken(t);
          setRefused(null);
          setToken(t);
        }}
      />
    );
  }
  const route = parseRoute(loc.pathname);
  const unauthorized = () => signOut("The API refused the token (wrong bearer token). Enter the right one.");
  return (
    <div class="shell">
      <nav class="topbar" aria-label="Main">
        <a href="/" class="brand">ailedger</a>
        <a href="/" aria-current={route.view === "overview" ? "page" : undefined}>Overview</a>
        <a href="/jobs" aria-current={route.view === "jobs" || route.view === "job" ? "page" : undefined}>Jobs</a>
        <a href="/budgets" aria-current={route.view === "budgets" ? "page" : undefined}>Budgets</a>
        <span class="spacer" />
        <button type="button" class="ghost" onClick={() => signOut()}>Sign out</button>
      </nav>
      <main>
        {route.view === "overview" && <Overview api={api} search={loc.search} onUnauthorized={unauthorized} />}
        {route.view === "jobs" && <JobsView api={api} search={loc.search} onUnauthorized={unauthorized} />}
        {route.view === "budgets" && <BudgetsView api={api} onUnauthorized={unauthorized} />}
        {route.view === "job" && <JobView api={api} jobId={route.id} />}
        {route.view === "image" && <ImageView api={api} imageId={route.id} />}
        {route.view === "missing" && <p class="error">Nothing at {route.path}.</p>}
      </main>
    </div>
  );
}

function Login(props: { refused: string | null; onToken: (token: string) => void }) {
  const [checking, setChecking] = useState(false);
  const [message, setMessage] = useState<string | null>(props.refused);
  return (
    <main class="login">
      <form
        class="panel login-form"
        onSubmit={async (e) => {
          e.preventDefault();
          const token = String(new FormData(e.currentTarget).get("token") ?? "").trim();
          if (!token) {
            setMessage("Enter the API token (AILEDGER_API_TOKEN of `ailedger serve`).");
            return;
          }
          setChecking(true);
          try {
            await new Api("", token).get("/api/admin/jobs-summary", {
              from: new Date(Date.now() - 60_000).toISOString(),
            });
            props.onToken(token);
          } catch (error) {
            setMessage(
              error instanceof ApiError && error.status === 401
                ? `The API refused this token: ${error.message}.`
                : `Cannot check the token: ${(error as Error).message}`,
            );
          } finally {
            setChecking(false);
          }
        }}
      >
        <h1>ailedger</h1>
        <p class="muted">What the platform's AI calls cost. Sign in with the API token.</p>
        <label class="filter">
          <span>API token</span>
          <input name="token" type="password" autoComplete="current-password" required autoFocus />
        </label>
        {message && <p class="error" role="alert" data-login-error>{message}</p>}
        <button type="submit" disabled={checking}>{checking ? "Checking…" : "Sign in"}</button>
        <p class="muted small">Kept for this browser tab only (sessionStorage), sent as an Authorization header.</p>
      </form>
    </main>
  );
}
