/**
 * A task's whole log (GET /api/dags/:id/tasks/:task/logs): its stderr as the runner streamed it,
 * read from where the last read ended (`X-Log-Next`) and, while the attempt runs and "follow" is
 * on, again every second, scrolled to the end; with a download of what was read. Used by run.ts.
 */
import { el, fail, objectUrl, onLeave, request, Unauthorized } from "../lib.js";

/** At most this much of a log is kept on the page (the coordinator keeps 1 MiB an attempt). */
const SHOWN_CHARS = 2 * 1024 * 1024;

/**
 * The log panel of `task`'s attempt `attempt` and what stops its reading (call it before the
 * panel leaves the page); its close button stops it and calls `close`.
 */
export function logPanel(
  run: string,
  task: string,
  attempt: number,
  close: () => void,
): { node: HTMLElement; stop: () => void } {
  const text = el("pre", {
    class: "log",
    tabindex: 0,
    "aria-label": `log of ${task} attempt ${attempt}`,
    "data-log": task,
  });
  const follow = el("input", { type: "checkbox", checked: true, id: "log-follow" });
  const state = el("small", { class: "hint", "aria-live": "polite" });
  const download = el(
    "a",
    { href: "#", download: `${task.replace(/[^A-Za-z0-9_.-]/g, "_")}-${attempt}.log`, class: "download" },
    "download",
  );
  const shut = el("button", { type: "button", class: "link" }, "close");
  const panel = el(
    "section",
    { class: "log-panel", id: "log", "aria-label": `log of ${task}` },
    el("h3", {}, `Log of ${task}, attempt ${attempt} `, shut),
    el("p", { class: "controls" }, el("label", { class: "check" }, follow, " follow"), " ", download, " ", state),
    text,
  );
  const decoder = new TextDecoder();
  let offset = 0;
  let alive = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stopIt = () => {
    alive = false;
    clearTimeout(timer);
  };
  shut.onclick = () => {
    stopIt();
    close();
  };
  onLeave(stopIt);
  download.onclick = () => {
    download.href = objectUrl(text.textContent ?? "", "text/plain");
  };
  const read = async () => {
    try {
      const path = `/api/dags/${run}/tasks/${encodeURIComponent(task)}/logs?attempt=${attempt}&offset=${offset}`;
      const res = await request(path);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const running = res.headers.get("X-Log-Running") === "true";
      offset = Number(res.headers.get("X-Log-Next") ?? offset + bytes.length);
      const atEnd = text.scrollTop + text.clientHeight >= text.scrollHeight - 4;
      const more = decoder.decode(bytes, { stream: running });
      if (more) text.textContent = ((text.textContent ?? "") + more).slice(-SHOWN_CHARS);
      if (follow.checked && atEnd) text.scrollTop = text.scrollHeight;
      const cut = res.headers.get("X-Log-Cut");
      const size = `${offset} bytes`;
      state.textContent = `${running ? "running" : "ended"} · ${size}${cut ? ` · ${cut} bytes not kept` : ""}`;
      if (offset === 0 && !running) text.textContent = "(this attempt wrote nothing to stderr)";
      if (running && alive) timer = setTimeout(() => void read(), follow.checked ? 1000 : 5000);
    } catch (e) {
      if (e instanceof Unauthorized) return fail(e);
      state.textContent = `Error: ${e instanceof Error ? e.message : String(e)}; trying again`;
      // The coordinator may be restarting: the attempt may still run, so keep reading.
      if (alive) timer = setTimeout(() => void read(), 5000);
    }
  };
  void read();
  return { node: panel, stop: stopIt };
}
