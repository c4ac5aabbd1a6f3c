import { render } from "preact";
import { App } from "./app";
import { followLink } from "./route";
import "./style.css";

document.addEventListener("click", followLink);
render(<App />, document.getElementById("app")!);
