/**
 * A new run from the page (#/new): the DAG's YAML in an editor that shows the parser's problems at
 * their line and column as you type (core/dag/parse.ts, the coordinator's own parser, run here: no
 * round trip), one click to start from an example of dags/, the uploaded modules with drag-and-drop
 * upload of new ones, a form for the DAG's params (typed as it declares them) and its inputs (a
 * file, a folder or a JSON value each, uploaded with progress), and Submit, which opens the live
 * run. The editor is a textarea with a gutter of line numbers (docs/decisions.md says why). The
 * draft is kept in this browser until it is submitted.
 */
import type { ModuleInfo, ModuleListing, Problem, SubmitAnswer, SubmitBody } from "../../core/api.js";
import { coerceParam, type ParamDecl } from "../../core/dag/params.js";
import { declaredFields, parseDag } from "../../core/dag/parse.js";
import type { RunInput } from "../../core/dag/plan.js";
import { formatSize } from "../../core/units.js";
import { api, ApiError, app, el, fail, may, post, progress } from "../lib.js";
import { put, uploadFile } from "../upload.js";

/** An example DAG of dags/, as scripts/build-page.js lists them in examples.json. */
interface Example {
  name: string;
  file: string;
  text: string;
}

const DRAFT_KEY = "distro.draft";
/** A draft longer than this is not kept (localStorage holds a few MiB for the whole origin). */
const DRAFT_CHARS = 1_000_000;

/** Keeps the draft in this browser when it can: a full storage never stops the editor's checks. */
function saveDraft(text: string): void {
  try {
    if (text.length <= DRAFT_CHARS) localStorage.setItem(DRAFT_KEY, text);
    else localStorage.removeItem(DRAFT_KEY);
  } catch {
    // full, or refused (a private window): the draft lives as long as the page
  }
}
const STARTER = `name: my-run
tasks:
  - { id: hello, module: echo.wasm, params: { greeting: hi } }
`;

/** A param's field, and how its text becomes the value submitted (undefined: not given, the default holds). */
interface ParamField {
  node: HTMLElement;
  /** The control the user sets: what is kept when the field is built again. */
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
  value(): unknown;
}

function paramField(name: string, decl: ParamDecl, onChange: () => void): ParamField {
  const id = `param-${name}`;
  const hint = [
    decl.type ?? "any",
    decl.min !== undefined ? `≥ ${decl.min}` : "",
    decl.max !== undefined ? `≤ ${decl.max}` : "",
    decl.default !== undefined ? `default ${JSON.stringify(decl.default)}` : "required",
  ]
    .filter(Boolean)
    .join(", ");
  let input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
  let value: () => unknown;
  if (decl.enum) {
    const select = el(
      "select",
      { id, "data-param": name },
      el("option", { value: "" }, decl.default !== undefined ? `default (${JSON.stringify(decl.default)})` : "choose…"),
      decl.enum.map((v, i) => el("option", { value: String(i) }, JSON.stringify(v))),
    );
    input = select;
    value = () => (select.value === "" ? undefined : decl.enum![Number(select.value)]);
  } else if (decl.type === "boolean") {
    const box = el(
      "select",
      { id, "data-param": name },
      el("option", { value: "" }, "default"),
      el("option", { value: "true" }, "true"),
      el("option", { value: "false" }, "false"),
    );
    input = box;
    value = () => (box.value === "" ? undefined : box.value === "true");
  } else if (decl.type === "array" || decl.type === "object") {
    const area = el("textarea", {
      id,
      rows: 2,
      "data-param": name,
      placeholder: decl.default !== undefined ? JSON.stringify(decl.default) : "JSON",
    });
    input = area;
    value = () => (area.value.trim() === "" ? undefined : coerceParam(area.value, decl.type));
  } else {
    const numeric = decl.type === "integer" || decl.type === "number";
    const field = el("input", {
      id,
      "data-param": name,
      type: numeric ? "number" : "text",
      step: decl.type === "integer" ? 1 : numeric ? "any" : null,
      min: decl.min ?? null,
      max: decl.max ?? null,
      placeholder:
        decl.default !== undefined
          ? String(typeof decl.default === "string" ? decl.default : JSON.stringify(decl.default))
          : "",
    });
    input = field;
    value = () => (field.value === "" ? undefined : coerceParam(field.value, decl.type));
  }
  input.addEventListener("input", onChange);
  return {
    node: el("div", { class: "field" }, el("label", { for: id }, name), input, el("small", { class: "hint" }, hint)),
    control: input,
    value,
  };
}

/** An input's field: a file, a folder or a JSON value; `read` uploads what was picked and gives the input. */
interface InputField {
  node: HTMLElement;
  given(): boolean;
  read(sent: (bytes: number) => void): Promise<RunInput>;
  size(): number;
}

function inputField(name: string, onChange: () => void): InputField {
  const file = el("input", { type: "file", id: `input-${name}-file`, "data-input-file": name });
  const folder = el("input", {
    type: "file",
    id: `input-${name}-folder`,
    multiple: true,
    webkitdirectory: true,
    "data-input-folder": name,
  });
  const value = el("textarea", {
    rows: 1,
    id: `input-${name}-value`,
    "data-input-value": name,
    placeholder: "or a JSON value",
  });
  for (const input of [file, folder, value]) input.addEventListener("input", onChange);
  file.addEventListener("change", onChange);
  folder.addEventListener("change", onChange);
  const files = () => (file.files?.length ? [...file.files] : folder.files?.length ? [...folder.files] : []);
  return {
    node: el(
      "fieldset",
      { class: "input", "data-input": name },
      el("legend", {}, name),
      el("label", { for: file.id }, "a file "),
      file,
      el("label", { for: folder.id }, " or a folder "),
      folder,
      el("label", { for: value.id, class: "visually-hidden" }, `${name} as a JSON value`),
      value,
    ),
    given: () => files().length > 0 || value.value.trim() !== "",
    size: () => files().reduce((n, f) => n + f.size, 0),
    async read(sent) {
      if (file.files?.length) return { file: await uploadFile(file.files[0]!, file.files[0]!.name, sent) };
      if (folder.files?.length) {
        const refs = [];
        let done = 0;
        for (const f of folder.files) {
          // A folder's files keep their paths below the folder picked.
          const path = f.webkitRelativePath.split("/").slice(1).join("/") || f.name;
          refs.push(await uploadFile(f, path, (bytes) => sent(done + bytes)));
          done += f.size;
        }
        return { files: refs };
      }
      try {
        return { value: JSON.parse(value.value) as unknown };
      } catch {
        throw new Error(`input ${name}: the value is not JSON`);
      }
    },
  };
}

/** The uploaded modules and the drop zone that uploads more; `names()` for the editor's checks. */
function modulesPanel(onChange: () => void): { node: HTMLElement; names(): Set<string>; load(): Promise<void> } {
  const list = el("ul", { id: "module-list", class: "modules" });
  const uploads = el("div", { id: "module-uploads", "aria-live": "polite" });
  const picker = el("input", {
    type: "file",
    id: "module-file",
    multiple: true,
    accept: ".wasm,application/wasm",
    class: "visually-hidden",
  });
  const drop = el(
    "div",
    {
      id: "drop",
      class: "drop",
      tabindex: 0,
      role: "button",
      "aria-label": "drop .wasm modules here, or press Enter to choose them",
    },
    "Drop .wasm modules here, or ",
    el("label", { for: "module-file", class: "link" }, "choose them"),
    picker,
  );
  let known: ModuleListing["modules"] = [];
  const draw = () =>
    list.replaceChildren(
      ...(known.length === 0
        ? [el("li", { class: "hint" }, "No module uploaded yet.")]
        : known.map((m) =>
            el(
              "li",
              { "data-module": m.name },
              el("code", {}, m.name),
              ` ${formatSize(m.size)} · `,
              el("small", { title: m.sha256 }, m.sha256.slice(0, 12)),
            ),
          )),
    );
  const load = async () => {
    known = (await api<ModuleListing>("/api/modules")).modules;
    draw();
    onChange();
  };
  const upload = async (files: File[]) => {
    for (const f of files) {
      const bar = el("span", {}, progress(0, f.size));
      const line = el("p", { "data-uploading": f.name }, `${f.name} `, bar);
      uploads.append(line);
      try {
        const info = await put<ModuleInfo>(`/api/modules/${encodeURIComponent(f.name)}`, f, (sent) =>
          bar.replaceChildren(progress(sent, f.size)),
        );
        line.replaceChildren(`${info.name} uploaded (${formatSize(info.size)})`);
        setTimeout(() => line.remove(), 4000);
      } catch (e) {
        const problems = e instanceof ApiError ? e.problems.map((p) => p.message).join("; ") : "";
        line.replaceChildren(
          el(
            "span",
            { class: "error" },
            `${f.name}: ${e instanceof Error ? e.message : String(e)}${problems ? `: ${problems}` : ""}`,
          ),
        );
      }
    }
    await load();
  };
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    void upload([...(e.dataTransfer?.files ?? [])]).catch(fail);
  });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      picker.click();
    }
  });
  picker.addEventListener("change", () => void upload([...(picker.files ?? [])]).catch(fail));
  const canUpload = may("submit");
  return {
    node: el(
      "section",
      { id: "modules" },
      el("h3", {}, "Modules"),
      list,
      canUpload ? drop : el("p", { class: "hint" }, "A submit token uploads modules."),
      uploads,
    ),
    names: () => new Set(known.map((m) => m.name)),
    load,
  };
}

export async function newRunView(): Promise<void> {
  document.title = "Distro: new run";
  const editor = el("textarea", {
    id: "dag",
    spellcheck: false,
    autocomplete: "off",
    autocapitalize: "off",
    wrap: "off",
    rows: 18,
    "aria-describedby": "editor-keys check",
  });
  editor.value = localStorage.getItem(DRAFT_KEY) ?? STARTER;
  const gutter = el("pre", { id: "gutter", class: "gutter", "aria-hidden": "true" });
  const check = el("p", { id: "check", class: "check-line", "aria-live": "polite" });
  const problemsList = el("ul", { id: "problems", class: "problems" });
  const examples = el(
    "div",
    { id: "examples", class: "examples" },
    el("span", { class: "hint" }, "Start from an example: "),
  );
  const paramsBox = el("fieldset", { id: "params", hidden: true }, el("legend", {}, "Params"));
  const inputsBox = el("fieldset", { id: "inputs", hidden: true }, el("legend", {}, "Inputs"));
  const submit = el("button", { type: "button", id: "submit", class: "primary" }, "Submit");
  const status = el("p", { id: "submit-status", "aria-live": "polite" });
  /** What a change of a field, an input or the modules does: the coordinator's last refusal is for what was before. */
  const changed = () => {
    refused = null;
    recheck();
  };
  const modules = modulesPanel(changed);
  let params = new Map<string, ParamField>();
  let inputs = new Map<string, InputField>();
  let fieldsKey = "";
  /** The declaration each param's field was built for. */
  const declKeys = new Map<string, string>();
  let problems: Problem[] = [];
  /** Problems the coordinator found in what was submitted, shown until the text or a field changes. */
  let refused: Problem[] | null = null;

  /** The params' values given in the form (a value that does not read as its type stays text: the parser says so). */
  const givenParams = () => {
    const out: Record<string, unknown> = {};
    for (const [name, field] of params) {
      const v = field.value();
      if (v !== undefined) out[name] = v;
    }
    return out;
  };

  /** Rebuilds the params and inputs forms when the document declares other ones. */
  const buildFields = () => {
    const declared = declaredFields(editor.value);
    const key = JSON.stringify([[...declared.params], declared.inputs]);
    if (key === fieldsKey) return;
    fieldsKey = key;
    // A param declared as before keeps its field; one declared anew keeps what was set in it,
    // where its control is of the same kind (a select keeps its choice if it is still offered).
    const before = params;
    params = new Map(
      [...declared.params].map(([name, decl]) => {
        const declKey = JSON.stringify(decl);
        const old = before.get(name);
        if (old && declKeys.get(name) === declKey) return [name, old];
        declKeys.set(name, declKey);
        const field = paramField(name, decl, changed);
        if (old && old.control.tagName === field.control.tagName) field.control.value = old.control.value;
        return [name, field];
      }),
    );
    paramsBox.replaceChildren(el("legend", {}, "Params"), ...[...params.values()].map((f) => f.node));
    paramsBox.hidden = params.size === 0;
    const kept = inputs;
    inputs = new Map(declared.inputs.map((name) => [name, kept.get(name) ?? inputField(name, changed)]));
    inputsBox.replaceChildren(el("legend", {}, "Inputs"), ...[...inputs.values()].map((f) => f.node));
    inputsBox.hidden = inputs.size === 0;
  };

  /** The gutter: a line number per line of the text, those with a problem marked. */
  const drawGutter = () => {
    const lines = editor.value.split("\n").length;
    const bad = new Map<number, string>();
    for (const p of problems) if (p.line > 0) bad.set(p.line, [bad.get(p.line), p.message].filter(Boolean).join("\n"));
    gutter.replaceChildren(
      ...Array.from({ length: lines }, (_, i) =>
        el(
          "span",
          { class: bad.has(i + 1) ? "bad" : null, title: bad.get(i + 1) ?? null, "data-line": i + 1 },
          `${i + 1}\n`,
        ),
      ),
    );
    gutter.scrollTop = editor.scrollTop;
  };

  /** Moves the caret to `line`:`column` of the text (1-based) and the view to it. */
  const goTo = (line: number, column: number) => {
    const lines = editor.value.split("\n");
    const at = lines.slice(0, Math.max(0, line - 1)).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, column - 1);
    editor.focus();
    editor.setSelectionRange(at, at);
    const lineHeight = editor.scrollHeight / Math.max(1, lines.length);
    editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
  };

  const drawProblems = () => {
    problemsList.replaceChildren(
      ...problems.map((p) => {
        const where = p.line > 0 ? `line ${p.line}, column ${p.column}` : p.path || "the document";
        const jump = el("button", { type: "button", class: "link" }, where);
        jump.onclick = () => goTo(p.line, p.column);
        return el("li", { "data-line": p.line, "data-path": p.path }, jump, `: ${p.message}`);
      }),
    );
    const missingInputs = [...inputs].filter(([, f]) => !f.given()).map(([name]) => name);
    const blocking = problems.length > 0 || missingInputs.length > 0;
    check.className = `check-line ${problems.length > 0 ? "bad" : "good"}`;
    check.textContent =
      problems.length > 0
        ? `${problems.length} problem(s): nothing is sent until they are fixed.`
        : missingInputs.length > 0
          ? `Give the input(s) ${missingInputs.join(", ")} to submit.`
          : "No problems: ready to submit.";
    submit.disabled = blocking || !may("submit");
  };

  /** Parses the text as the coordinator will, with the params given, and checks that its modules are uploaded. */
  const recheck = () => {
    buildFields();
    const parsed = parseDag(editor.value, { params: givenParams() });
    if (refused) problems = refused;
    else if (!parsed.ok) problems = parsed.problems;
    else {
      const uploaded = modules.names();
      problems = parsed.plan.nodes
        .filter((n) => !n.module.startsWith("sha256:") && !uploaded.has(n.module))
        .map((n) => ({
          ...parsed.locate(n.id, "module"),
          message: `module ${n.module} is not uploaded: drop its .wasm on the Modules box`,
        }));
    }
    drawGutter();
    drawProblems();
  };

  let timer: ReturnType<typeof setTimeout> | undefined;
  editor.addEventListener("input", () => {
    refused = null;
    saveDraft(editor.value);
    drawGutter();
    clearTimeout(timer);
    timer = setTimeout(recheck, 120);
  });
  editor.addEventListener("scroll", () => (gutter.scrollTop = editor.scrollTop));
  editor.addEventListener("keydown", (e) => {
    // Tab indents by two spaces (YAML has no tabs), the selected lines when there is a selection;
    // Escape then Tab leaves the editor (the hint under it says so).
    if (e.key !== "Tab" || e.shiftKey || editor.dataset.escaped === "1") return;
    e.preventDefault();
    const { selectionStart: start, selectionEnd: end, value } = editor;
    if (start === end) return insert("  ");
    const from = value.lastIndexOf("\n", start - 1) + 1;
    const block = value.slice(from, end).replace(/^/gm, "  ");
    editor.setSelectionRange(from, end);
    insert(block);
    editor.setSelectionRange(from, from + block.length);
  });
  editor.addEventListener("keyup", (e) => {
    editor.dataset.escaped = e.key === "Escape" ? "1" : "";
  });
  /** Types `text` over the selection as the user would: the browser's undo takes it back. */
  const insert = (text: string) => {
    // execCommand is the one way to edit a textarea that its undo history keeps.
    if (!document.execCommand("insertText", false, text)) {
      editor.setRangeText(text, editor.selectionStart, editor.selectionEnd, "end");
      editor.dispatchEvent(new Event("input"));
    }
  };

  submit.onclick = async () => {
    submit.disabled = true;
    try {
      const given: Record<string, RunInput> = {};
      for (const [name, field] of inputs) {
        const total = field.size();
        const bar = el("span", {}, progress(0, total));
        status.replaceChildren(`Uploading ${name} `, bar);
        given[name] = await field.read((sent) => bar.replaceChildren(progress(Math.min(sent, total), total)));
      }
      status.textContent = "Submitting…";
      const body: SubmitBody = { dag: editor.value, params: givenParams(), inputs: given };
      const answer = await post<SubmitAnswer>("/api/dags", body);
      localStorage.removeItem(DRAFT_KEY);
      location.hash = `#/runs/${answer.id}`;
    } catch (e) {
      status.textContent = "";
      if (e instanceof ApiError && e.problems.length > 0) {
        refused = e.problems;
        recheck();
        check.textContent = `The coordinator refused it: ${e.message}.`;
      } else fail(e, status);
      submit.disabled = false;
    }
  };

  app.replaceChildren(
    el("h2", {}, "New run"),
    el("p", { id: "error", class: "error", role: "alert" }),
    examples,
    el("label", { for: "dag", class: "editor-label" }, "The DAG, in YAML"),
    el("div", { class: "editor" }, gutter, editor),
    el("small", { id: "editor-keys", class: "hint" }, "Tab indents; Esc, then Tab, moves on to the next field."),
    check,
    problemsList,
    el("div", { class: "forms" }, paramsBox, inputsBox),
    modules.node,
    el("p", { class: "controls" }, submit),
    status,
  );
  recheck();
  const [list] = await Promise.all([
    fetch("/examples.json").then((r) => (r.ok ? (r.json() as Promise<Example[]>) : [])),
    modules.load(),
  ]);
  for (const ex of list) {
    const use = el("button", { type: "button", class: "link", "data-example": ex.name, title: ex.file }, ex.name);
    use.onclick = () => {
      // A draft of the user's own is not replaced without asking.
      const own = editor.value.trim() !== "" && editor.value !== STARTER && !list.some((x) => x.text === editor.value);
      if (own && !confirm(`Replace the DAG in the editor with the example ${ex.name}?`)) return;
      editor.value = ex.text;
      editor.dispatchEvent(new Event("input"));
      recheck();
      editor.focus();
    };
    examples.append(use, " ");
  }
}
