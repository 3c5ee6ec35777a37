// The status page (seed): recent runs, and one run's tasks with their attempts. Asks for the
// API token once and keeps it in localStorage. Refreshes every two seconds.
const app = document.getElementById("app");
const tokenKey = "distro.token";

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const badge = (state) => `<span class="state ${esc(state)}">${esc(state)}</span>`;
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${localStorage.getItem(tokenKey) ?? ""}` } });
  if (res.status === 401) {
    localStorage.removeItem(tokenKey);
    throw new Error("unauthorized");
  }
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? `HTTP ${res.status}`);
  return res.json();
}

function askToken() {
  app.innerHTML = `<form id="login"><input id="token" type="password" placeholder="API token" autofocus required><button>Open</button></form>`;
  document.getElementById("login").onsubmit = (e) => {
    e.preventDefault();
    localStorage.setItem(tokenKey, document.getElementById("token").value);
    render();
  };
}

async function runsView() {
  const { runs } = await api("/api/dags");
  if (runs.length === 0) return `<p>No runs yet. Submit one: <code>distro submit dags/hello_fanout.yaml --wait</code></p>`;
  const rows = runs
    .map((r) => `<tr><td><a href="#/runs/${esc(r.id)}">${esc(r.name)}</a></td><td>${badge(r.status)}</td><td>${r.succeeded}/${r.tasks}</td><td>${time(r.created_at)}</td><td><code>${esc(r.id.slice(0, 12))}</code></td></tr>`)
    .join("");
  return `<h2>Runs</h2><table><tr><th>name</th><th>status</th><th>done</th><th>submitted</th><th>id</th></tr>${rows}</table>`;
}

async function runView(id) {
  const run = await api(`/api/dags/${encodeURIComponent(id)}`);
  const counts = Object.entries(run.counts).filter(([, n]) => n > 0).map(([s, n]) => `${badge(s)} ${n}`).join(" ");
  const rows = run.tasks
    .map((t) => {
      const last = t.attempts[t.attempts.length - 1];
      const error = last?.error ? `<pre>${esc(last.failure_kind)}: ${esc(last.error)}\n${esc(last.stderr)}</pre>` : "";
      return `<tr><td>${esc(t.id)}</td><td>${badge(t.state)}</td><td>${t.attempts.length}</td><td>${esc(last?.runner_name)}</td><td>${time(t.started_at)}</td><td>${error}</td></tr>`;
    })
    .join("");
  return `<p><a href="#/">← runs</a></p><h2>${esc(run.name)} ${badge(run.status)}</h2><p>${counts}</p>
    <table><tr><th>task</th><th>state</th><th>attempts</th><th>runner</th><th>started</th><th>error</th></tr>${rows}</table>`;
}

let timer;
async function render() {
  clearTimeout(timer);
  if (!localStorage.getItem(tokenKey)) return askToken();
  const m = /^#\/runs\/([0-9a-f]{64})$/.exec(location.hash);
  try {
    app.innerHTML = m ? await runView(m[1]) : await runsView();
    timer = setTimeout(render, 2000);
  } catch (e) {
    if (e.message === "unauthorized") return askToken();
    app.innerHTML = `<p>Error: ${esc(e.message)}</p>`;
    timer = setTimeout(render, 5000);
  }
}
window.addEventListener("hashchange", render);
render();
