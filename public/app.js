// The status page: recent runs; one run as a live graph (over GET /api/dags/:id/watch) with its
// throughput, controls, outputs and tasks; the connected runners with their CPU and memory load
// over the last ten minutes (the pool keeps their device reports), the enrolled devices, and adding
// one (an enrollment and the command that joins with it). Plain modules, no build step,
// nothing from a CDN. Asks for the API token once and keeps it in localStorage. This module, the one
// index.html loads, holds the routing, the login form and sign-out; lib.js what the views share,
// lists.js the runs and runners lists (add-device.js its "Add a device" panel), run-view.js (with
// run-charts.js) one run.
import { app, esc, fail, forgetToken, saveToken, stop, token, whenUnauthorized, whoami } from "./lib.js";
import { runnersView, runsView } from "./lists.js";
import { runView } from "./run-view.js";

const LOGIN_HINT = "The coordinator's API_TOKEN (dev-api-token with npm start). It stays in this browser.";

function askToken(message = "") {
  stop();
  app.innerHTML = `<form id="login" class="login">
    <label>API token <input id="token" type="password" autocomplete="current-password" required></label>
    <button>Open</button>
    <p class="hint">${esc(message) || LOGIN_HINT}</p></form>`;
  document.getElementById("login").onsubmit = (e) => {
    e.preventDefault();
    saveToken(document.getElementById("token").value);
    route();
  };
}

// Routing ------------------------------------------------------------------------------------

async function route() {
  stop();
  app.onclick = null;
  if (!token()) return askToken();
  const run = /^#\/runs\/([0-9a-f]{64})$/.exec(location.hash);
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle(
      "active",
      a.getAttribute("href") === (location.hash.startsWith("#/runners") ? "#/runners" : "#/"),
    );
  try {
    const self = await whoami();
    const who = document.getElementById("who");
    who.textContent = self.id === "API_TOKEN" ? "API_TOKEN" : `${self.name} (${self.scope})`;
    who.title = `signed in with a token of scope ${self.scope}`;
    if (run) await runView(run[1]);
    else if (location.hash === "#/runners") await runnersView();
    else await runsView();
  } catch (e) {
    fail(e);
  }
}

document.getElementById("logout").onclick = () => {
  forgetToken();
  askToken();
};
whenUnauthorized(askToken);
window.addEventListener("hashchange", route);
route();
