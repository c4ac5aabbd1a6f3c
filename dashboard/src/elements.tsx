// <ailedger-job-costs> and <ailedger-image-costs>: the job and image views for other front ends.
// Attributes: job-id / image-id, api-base (default: this origin), token (the API token).
import { render } from "preact";
import { Api } from "./api";
import styles from "./style.css?inline";
import { ImageView } from "./views/image";
import { JobView } from "./views/job";

let sheet: CSSStyleSheet | null = null;

abstract class CostsElement extends HTMLElement {
  static observedAttributes = ["api-base", "token", "job-id", "image-id"];
  private root: ShadowRoot;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    sheet ??= new CSSStyleSheet();
    if (sheet.cssRules.length === 0) sheet.replaceSync(styles);
    this.root.adoptedStyleSheets = [sheet];
  }

  connectedCallback(): void {
    this.update();
  }

  attributeChangedCallback(): void {
    if (this.isConnected) this.update();
  }

  disconnectedCallback(): void {
    render(null, this.root);
  }

  protected api(): Api {
    return new Api(this.getAttribute("api-base") ?? "", this.getAttribute("token") ?? "");
  }

  protected abstract view(api: Api): preact.VNode | null;

  private update(): void {
    const api = this.api();
    render(<div class="embedded">{this.view(api)}</div>, this.root);
  }
}

export class JobCostsElement extends CostsElement {
  protected view(api: Api) {
    const id = this.getAttribute("job-id");
    return id ? <JobView api={api} jobId={id} linkBase={api.base} embedded /> : null;
  }
}

export class ImageCostsElement extends CostsElement {
  protected view(api: Api) {
    const id = this.getAttribute("image-id");
    return id ? <ImageView api={api} imageId={id} linkBase={api.base} embedded /> : null;
  }
}

if (!customElements.get("ailedger-job-costs")) customElements.define("ailedger-job-costs", JobCostsElement);
if (!customElements.get("ailedger-image-costs")) customElements.define("ailedger-image-costs", ImageCostsElement);
