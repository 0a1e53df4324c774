// Whetstone's dashboard: hash routes, one render function per page, every number from the
// public API (api.js). Pages return a cleanup function (timers, streams) run on leaving.

import {
  api, ApiError, BASE_MODEL_OWNER, clearKey, download, getKey, listAll, setKey, streamChat,
} from "./api.js";
import { chartKind, KINDS, loadChart, lossChart, lossSeries } from "./chart.js";
import { checkJsonl } from "./jsonl.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 3000;
const main = document.getElementById("main");

// --- DOM helpers (text always goes in as text: nothing from the API becomes HTML) ----------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const errorBox = (e) => h("div", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e));
const statusBadge = (s) => h("span", { class: `status ${s}`, "data-status": s }, s.replaceAll("_", " "));
const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "—");
const fmtNum = (n) => (typeof n === "number" ? n.toLocaleString() : "—");
const fmtLoss = (n) => (typeof n === "number" ? n.toFixed(4) : "—");

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function jobDuration(job) {
  const end = job.finished_at ?? (FINAL.has(job.status) ? null : Date.now() / 1000);
  return end ? end - job.created_at : null;
}

function fmtBytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

const playgroundLink = (model) => `#/playground?model=${encodeURIComponent(model)}`;

/** The base model of a fine-tuned name `ft:{base}:{project}:{suffix}:{id}[:ckpt-step-N]`. */
function baseOf(model) {
  return model.startsWith("ft:") ? model.split(":")[1] : model;
}

// --- Routing ---------------------------------------------------------------------------------

let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const { parts, query } = parseHash();
  const nav = document.getElementById("nav");
  if (!getKey()) {
    nav.hidden = true;
    cleanup = renderLogin();
    return;
  }
  nav.hidden = false;
  const section = parts[0] || "jobs";
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.section === section);
  main.replaceChildren();
  const pages = {
    jobs: () => (parts[1] ? renderJob(parts[1]) : renderJobs()),
    new: () => renderNewJob(),
    playground: () => renderPlayground(query),
    files: () => renderFiles(),
    models: () => renderModels(),
  };
  cleanup = (pages[section] || pages.jobs)() || null;
}

window.addEventListener("hashchange", route);
window.addEventListener("whetstone:unauthorized", () => {
  if (!getKey()) return;
  clearKey();
  sessionStorage.setItem("whetstone.loginMessage", "Your key was refused; sign in again.");
  route();
});
document.getElementById("logout").addEventListener("click", () => {
  clearKey();
  location.hash = "#/jobs";
  route();
});

/** A timer that calls `fn` now and every `ms` until `stop()` or `fn` returns false. */
function poller(fn, ms = POLL_MS) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let again = true;
    try {
      again = (await fn()) !== false;
    } catch (e) {
      console.error(e);
    }
    if (!stopped && again) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// --- Login -----------------------------------------------------------------------------------

function renderLogin() {
  const input = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off", placeholder: "sk-whet-…", required: true });
  const message = sessionStorage.getItem("whetstone.loginMessage");
  sessionStorage.removeItem("whetstone.loginMessage");
  const out = h("div", { id: "login-error" }, message ? errorBox(message) : null);
  const form = h(
    "form",
    { class: "card login", id: "login" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Your project's API key (from `whetstone up` or `whetstone keys create`). It stays in this browser tab only."),
    h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input),
    h("button", { class: "primary", type: "submit" }, "Sign in"),
    out,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    out.replaceChildren();
    try {
      await api("/v1/models", { key }); // any authenticated call: a bad key answers 401
    } catch (e) {
      out.replaceChildren(errorBox(e));
      return;
    }
    setKey(key);
    if (!location.hash || location.hash === "#/") location.hash = "#/jobs";
    route();
  });
  main.replaceChildren(form);
  input.focus();
  return null;
}

// --- Jobs list -------------------------------------------------------------------------------

function renderJobs() {
  const body = h("tbody");
  const out = h("div");
  main.append(
    h("div", { class: "row spread" }, h("h1", {}, "Fine-tuning jobs"), h("a", { class: "button", href: "#/new" }, "New job")),
    out,
    h(
      "div",
      { class: "card table-wrap" },
      h(
        "table",
        { id: "jobs-table" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Job"), h("th", {}, "Status"), h("th", {}, "Model"),
          h("th", { class: "wide-only" }, "Created"), h("th", { class: "num" }, "Duration"),
          h("th", { class: "num wide-only" }, "Trained tokens"))),
        body,
      ),
    ),
  );
  return poller(async () => {
    let jobs;
    try {
      jobs = await listAll("/v1/fine_tuning/jobs", { max: 500 });
      out.replaceChildren();
    } catch (e) {
      out.replaceChildren(errorBox(e));
      return true;
    }
    if (jobs.length === 0) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No jobs yet. ", h("a", { href: "#/new" }, "Start one"), " from a JSONL file.")));
      return true;
    }
    body.replaceChildren(
      ...jobs.map((job) =>
        h("tr", { "data-job": job.id },
          h("td", { class: "id" }, h("a", { href: `#/jobs/${job.id}` }, job.id),
            job.fine_tuned_model ? h("div", { class: "small muted mono" }, job.fine_tuned_model) : null),
          h("td", {}, statusBadge(job.status)),
          h("td", {}, job.model),
          h("td", { class: "wide-only" }, fmtTime(job.created_at)),
          h("td", { class: "num" }, fmtDuration(jobDuration(job))),
          h("td", { class: "num wide-only" }, fmtNum(job.trained_tokens)))),
    );
    return true; // keep polling: new jobs and statuses show up
  }, 5000);
}

// --- Job page --------------------------------------------------------------------------------

function hyperparametersOf(job) {
  const type = job.method?.type;
  const hp = (type && job.method?.[type]?.hyperparameters) || job.hyperparameters || {};
  const rows = Object.entries(hp).map(([k, v]) => [k, v]);
  if (type) rows.unshift(["method", type]);
  const grader = type === "reinforcement" ? job.method.reinforcement?.grader : null;
  if (grader) rows.splice(1, 0, ["grader", `${grader.type} ${grader.name ?? ""}`.trim()]);
  if (job.learning_rate !== undefined && job.learning_rate !== null) rows.push(["learning_rate", job.learning_rate]);
  if (job.lora) for (const [k, v] of Object.entries(job.lora)) rows.push([`lora.${k}`, Array.isArray(v) ? v.join(", ") : v]);
  if (job.seed !== undefined && job.seed !== null) rows.push(["seed", job.seed]);
  return rows;
}

function facts(rows) {
  return h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function renderJob(jobId) {
  const title = h("h1", {}, jobId);
  const actionsOut = h("div");
  const buttons = {
    pause: h("button", { type: "button", id: "pause", disabled: true }, "Pause"),
    resume: h("button", { type: "button", id: "resume", disabled: true }, "Resume"),
    cancel: h("button", { type: "button", id: "cancel", class: "danger", disabled: true }, "Cancel"),
  };
  const summary = h("div", { class: "card", id: "job-summary" }, h("p", { class: "muted" }, "Loading…"));
  const hyper = h("div", { class: "card", id: "hyperparameters" });
  const canvas = h("canvas", { id: "loss-chart", "aria-label": "training and validation loss by step" });
  const chartNote = h("div", { id: "chart-note", class: "small muted" });
  const chartTitle = h("h2", {}, "Loss");
  const chartCard = h("div", { class: "card" }, chartTitle, h("div", { class: "chart-box" }, canvas), chartNote);
  const checkpoints = h("div", { class: "card table-wrap", id: "checkpoints" }, h("h2", {}, "Checkpoints"));
  const results = h("div", { class: "card", id: "result-files" }, h("h2", {}, "Result files"));
  const evaluation = h("div", { class: "card table-wrap", id: "evaluation", hidden: "" });
  const fileInfos = new Map(); // result file id -> its File object (the name to save it under)
  const reports = new Map(); // result file id -> its evaluation report, or null (another file)
  const fileInfo = async (id) => {
    if (!fileInfos.has(id)) fileInfos.set(id, await api(`/v1/files/${id}`));
    return fileInfos.get(id);
  };
  const saveResult = async (id) => download(id, (await fileInfo(id)).filename);
  const eventsList = h("ul");
  const events = h("div", { class: "card" }, h("h2", {}, "Events"), h("div", { class: "events", id: "events" }, eventsList));
  const errorOut = h("div");
  main.append(
    h("p", { class: "small" }, h("a", { href: "#/jobs" }, "← All jobs")),
    h("div", { class: "row spread" }, title, h("div", { class: "row" }, buttons.pause, buttons.resume, buttons.cancel)),
    actionsOut, errorOut,
    h("div", { class: "grid2" }, summary, hyper),
    chartCard,
    h("div", { class: "grid2" }, checkpoints, results),
    evaluation,
    events,
  );

  let chart = null;
  let chartFailed = false;
  let latest = null;
  const chartReady = loadChart().then((Chart) => {
    if (!Chart) {
      chartFailed = true;
      canvas.hidden = true;
      chartNote.textContent = "The chart is unavailable: the Chart.js library is not installed on the server (run `make install` or `npm ci` in service/ui). The losses are listed in the events below.";
      chartNote.className = "notice";
      chartNote.id = "chart-unavailable";
      return;
    }
    chart = lossChart(Chart, canvas);
  });

  for (const [action, button] of Object.entries(buttons)) {
    button.addEventListener("click", async () => {
      if (action === "cancel" && !confirm(`Cancel ${jobId}? A cancelled job cannot be resumed.`)) return;
      actionsOut.replaceChildren();
      button.disabled = true;
      try {
        const job = await api(`/v1/fine_tuning/jobs/${jobId}/${action}`, { method: "POST" });
        showJob(job);
      } catch (e) {
        actionsOut.replaceChildren(errorBox(e));
      }
    });
  }

  function showJob(job) {
    latest = job;
    buttons.pause.disabled = job.status !== "running";
    buttons.resume.disabled = job.status !== "paused";
    buttons.cancel.disabled = FINAL.has(job.status);
    const model = job.fine_tuned_model;
    summary.replaceChildren(...h("div", {},
      h("h2", {}, "Summary"),
      facts([
        ["status", statusBadge(job.status)],
        ["base model", job.model],
        ["fine-tuned model", model ? h("span", {}, h("span", { class: "mono" }, model), " ", h("a", { href: playgroundLink(model), class: "chat-link" }, "chat with this")) : "—"],
        ["created", fmtTime(job.created_at)],
        ["finished", fmtTime(job.finished_at)],
        ["duration", fmtDuration(jobDuration(job))],
        ["trained tokens", fmtNum(job.trained_tokens)],
        ["training file", job.training_file],
        ["validation file", job.validation_file || "—"],
        ...(job.estimated_finish && !FINAL.has(job.status) ? [["estimated finish", fmtTime(job.estimated_finish)]] : []),
      ]),
      job.error ? errorBox(`${job.error.code || "error"}: ${job.error.message}`) : null,
    ).childNodes);
    hyper.replaceChildren(h("h2", {}, "Hyperparameters"), facts(hyperparametersOf(job).map(([k, v]) => [k, String(v)])));
    const files = job.result_files || [];
    results.replaceChildren(
      h("h2", {}, "Result files"),
      files.length === 0
        ? h("p", { class: "muted" }, FINAL.has(job.status) ? "None." : "Written when the job finishes.")
        : h("ul", {}, files.map((id) => h("li", {}, h("button", { class: "link download", type: "button", "data-file": id, onclick: () => saveResult(id).catch((e) => actionsOut.replaceChildren(errorBox(e))) }, `Download ${id}`)))),
    );
    showEvaluation(files).catch(() => {}); // the report is extra: the page works without it
  }

  async function showEvaluation(files) {
    for (const id of files) {
      if (!reports.has(id)) {
        const file = await fileInfo(id);
        reports.set(id, file.filename === "eval_report.json" ? await api(`/v1/files/${id}/content`) : null);
      }
    }
    const report = [...files].reverse().map((id) => reports.get(id)).find((r) => r);
    if (!report) return;
    const pct = (n) => (typeof n === "number" ? `${(100 * n).toFixed(1)}%` : "—");
    const rows = report.models.map((m) =>
      h("tr", { "data-kind": m.kind },
        h("td", {}, m.kind.replace("_", "-")),
        h("td", { class: "mono small" }, m.model),
        h("td", { class: "num" }, m.matches == null ? "—" : `${m.matches}/${report.examples}`),
        h("td", { class: "num" }, pct(m.exact_match)),
        h("td", { class: "num" }, pct(m.f1)),
        h("td", { class: "num wide-only" }, fmtLoss(m.valid_loss))));
    const where = report.data === "validation_file" ? "the validation file" : "held-out training lines";
    evaluation.hidden = false;
    evaluation.replaceChildren(
      h("h2", {}, "Evaluation"),
      h("p", { class: "small muted" }, `${report.examples} examples from ${where}, greedy answers, ${Math.round(report.seconds)} s`),
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Kind"), h("th", {}, "Model"), h("th", { class: "num" }, "Matches"),
          h("th", { class: "num" }, "Exact match"), h("th", { class: "num" }, "F1"), h("th", { class: "num wide-only" }, "Valid loss"))),
        h("tbody", {}, rows)),
      report.outliers.length
        ? h("p", { class: "small" }, "Highest final loss: ", report.outliers.map((o) => `line ${o.line} (${o.loss.toFixed(2)})`).join(", "))
        : null,
      report.flips ? renderFlips(report.flips) : null,
    );
  }

  function renderFlips(flips) {
    return h("div", { id: "eval-flips" },
      h("h3", {}, `Against the source model: ${flips.lost} lost, ${flips.gained} gained`),
      h("p", { class: "small muted" }, "Examples where exactly one of the source model and the fine-tuned model matches the reference."),
      flips.examples.length
        ? h("table", {},
          h("thead", {}, h("tr", {}, h("th", {}, "Flip"), h("th", { class: "num" }, "Line"), h("th", {}, "Prompt"),
            h("th", {}, "Reference"), h("th", {}, "Source"), h("th", {}, "Fine-tuned"))),
          h("tbody", {}, flips.examples.map((f) =>
            h("tr", { "data-flip": f.flip },
              h("td", {}, f.flip), h("td", { class: "num" }, String(f.line)), h("td", { class: "small" }, f.prompt),
              h("td", { class: "small" }, f.reference), h("td", { class: "small" }, f.source), h("td", { class: "small" }, f.fine_tuned)))))
        : null);
  }

  function showEvents(all) {
    eventsList.replaceChildren(
      ...all.map((e) => h("li", { class: e.level }, h("span", { class: "time" }, fmtTime(e.created_at)), e.message)),
    );
    if (all.length === 0) eventsList.append(h("li", { class: "muted" }, "No events yet."));
  }

  function showCheckpoints(list, kind) {
    const keys = KINDS[kind];
    const name = kind === "reward" ? "reward" : "loss";
    const rows = list.map((c) =>
      h("tr", { "data-checkpoint": c.id },
        h("td", { class: "num" }, c.step_number),
        h("td", { class: "num" }, fmtLoss(c.metrics?.[keys.train])),
        h("td", { class: "num wide-only" }, fmtLoss(c.metrics?.[keys.valid])),
        h("td", { class: "id" }, h("div", { class: "mono small" }, c.fine_tuned_model_checkpoint),
          h("a", { href: playgroundLink(c.fine_tuned_model_checkpoint), class: "chat-link" }, "chat with this"))));
    checkpoints.replaceChildren(
      h("h2", {}, "Checkpoints"),
      list.length === 0 ? h("p", { class: "muted" }, "None yet.") : h("table", {},
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Step"), h("th", { class: "num" }, `Train ${name}`),
          h("th", { class: "num wide-only" }, `Valid ${name}`), h("th", {}, "Model"))),
        h("tbody", {}, rows)),
    );
  }

  return poller(async () => {
    let job, all, ckpts;
    try {
      [job, all, ckpts] = await Promise.all([
        api(`/v1/fine_tuning/jobs/${jobId}`),
        listAll(`/v1/fine_tuning/jobs/${jobId}/events`, { max: 5000 }),
        listAll(`/v1/fine_tuning/jobs/${jobId}/checkpoints`),
      ]);
      errorOut.replaceChildren();
    } catch (e) {
      errorOut.replaceChildren(errorBox(e));
      return !(e instanceof ApiError && e.status === 404); // a missing job: stop asking
    }
    showJob(job);
    showEvents(all);
    const kind = chartKind(job); // a reinforcement job's chart is its mean rewards
    const label = KINDS[kind].label;
    chartTitle.textContent = kind === "reward" ? "Reward" : "Loss";
    canvas.setAttribute("aria-label", `training and validation ${label} by step`);
    showCheckpoints(ckpts, kind);
    await chartReady;
    const series = lossSeries(all, kind);
    if (chart) chart.update(series, kind);
    if (!chartFailed) {
      const last = series.train.at(-1);
      chartNote.textContent = last ? `${series.train.length} training points; last step ${last.x}, ${label} ${fmtLoss(last.y)}${series.valid.length ? `; ${series.valid.length} validation points` : ""}.` : "No metrics yet: the curve starts with the first training step.";
    }
    return !FINAL.has(job.status); // a finished job's numbers no longer change
  });
}

// --- New job ---------------------------------------------------------------------------------

function fileField(id, labelText, hint, required) {
  const input = h("input", { type: "file", id, accept: ".jsonl,.json,application/jsonl,application/json", required });
  const report = h("div", { id: `${id}-check`, class: "small" });
  input.addEventListener("change", async () => {
    report.replaceChildren();
    const file = input.files[0];
    if (!file) return;
    if (file.size > 50 * 1024 * 1024) {
      report.append(h("span", { class: "muted" }, `${fmtBytes(file.size)}: too large to check here; the server checks every line when it arrives.`));
      return;
    }
    const { lines, errors, truncated } = checkJsonl(await file.text());
    if (errors.length === 0) {
      report.append(h("span", { class: "muted" }, `${lines} examples; each line looks right (the server checks them again).`));
    } else {
      report.append(h("div", { class: "notice" }, `Checked in your browser: ${errors.length}${truncated ? "+" : ""} line(s) look wrong; the server will refuse the file:`,
        h("ul", { class: "errors" }, errors.map((e) => h("li", {}, e.line ? `line ${e.line}: ${e.message}` : e.message)))));
    }
  });
  return { input, el: h("div", { class: "field" }, h("label", { for: id }, labelText, " ", h("span", { class: "hint" }, hint)), input, report) };
}

async function uploadFile(file) {
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", file, file.name);
  return api("/v1/files", { method: "POST", form });
}

function renderNewJob() {
  const training = fileField("training-file", "Training file", "JSONL, one chat example per line", false);
  const validation = fileField("validation-file", "Validation file", "optional", false);
  // or a file uploaded before (Files page, CLI, SDK)
  const pick = (id) => h("select", { id, class: "small", "aria-label": "an uploaded file" }, h("option", { value: "" }, "…or pick an uploaded file"));
  const trainingPick = pick("training-existing");
  const validationPick = pick("validation-existing");
  training.el.append(trainingPick);
  validation.el.append(validationPick);
  listAll("/v1/files?purpose=fine-tune", { max: 500 }).then((files) => {
    for (const select of [trainingPick, validationPick]) {
      select.append(...files.map((f) => h("option", { value: f.id }, `${f.filename} (${f.id})`)));
    }
  }, () => {});
  const model = h("select", { id: "base-model", required: true }, h("option", { value: "" }, "Loading models…"));
  const epochs = h("input", { type: "number", id: "n-epochs", min: 1, max: 50, step: 1, placeholder: "auto" });
  const lrm = h("input", { type: "number", id: "lr-multiplier", min: 0.01, max: 10, step: "any", placeholder: "auto" });
  const suffix = h("input", { type: "text", id: "suffix", maxlength: 64, pattern: "[A-Za-z0-9_\\-]+", placeholder: "e.g. support-bot" });
  const submit = h("button", { class: "primary", type: "submit", id: "start" }, "Start fine-tuning");
  const out = h("div", { id: "new-job-error" });
  const progress = h("div", { class: "muted small", id: "new-job-progress" });
  const form = h("form", { class: "card", id: "new-job" },
    training.el,
    validation.el,
    h("div", { class: "field" }, h("label", { for: "base-model" }, "Base model"), model),
    h("div", { class: "grid2" },
      h("div", { class: "field" }, h("label", { for: "n-epochs" }, "Epochs ", h("span", { class: "hint" }, "1-50, empty: auto")), epochs),
      h("div", { class: "field" }, h("label", { for: "lr-multiplier" }, "Learning-rate multiplier ", h("span", { class: "hint" }, "x 2e-4, empty: auto")), lrm)),
    h("div", { class: "field" }, h("label", { for: "suffix" }, "Suffix ", h("span", { class: "hint" }, "optional; part of the model's name")), suffix),
    h("div", { class: "row" }, submit, progress),
    out,
  );
  main.append(h("h1", {}, "New fine-tuning job"), form);

  api("/v1/models").then(({ data }) => {
    const base = data.filter((m) => m.owned_by === BASE_MODEL_OWNER);
    const tuned = data.filter((m) => m.owned_by !== BASE_MODEL_OWNER);
    model.replaceChildren(h("optgroup", { label: "Base models" }, base.map((m) => h("option", { value: m.id }, m.id))));
    if (tuned.length) model.append(h("optgroup", { label: "Continue training a fine-tuned model" }, tuned.map((m) => h("option", { value: m.id }, m.id))));
  }, (e) => out.replaceChildren(errorBox(e)));

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    submit.disabled = true;
    try {
      let train = { id: trainingPick.value };
      if (training.input.files[0]) {
        progress.textContent = "Uploading the training file (the server checks every line)…";
        train = await uploadFile(training.input.files[0]);
      } else if (!train.id) {
        throw new Error("Choose a training file: a JSONL file to upload, or one uploaded before.");
      }
      let valid = validationPick.value ? { id: validationPick.value } : null;
      if (validation.input.files[0]) {
        progress.textContent = "Uploading the validation file…";
        valid = await uploadFile(validation.input.files[0]);
      }
      const hyperparameters = {};
      if (epochs.value) hyperparameters.n_epochs = Number(epochs.value);
      if (lrm.value) hyperparameters.learning_rate_multiplier = Number(lrm.value);
      const body = {
        model: model.value,
        training_file: train.id,
        method: { type: "supervised", supervised: { hyperparameters } },
      };
      if (valid) body.validation_file = valid.id;
      if (suffix.value.trim()) body.suffix = suffix.value.trim();
      progress.textContent = "Creating the job…";
      const job = await api("/v1/fine_tuning/jobs", { method: "POST", json: body });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      progress.textContent = "";
      out.replaceChildren(errorBox(e));
      submit.disabled = false;
    }
  });
  return null;
}

// --- Playground ------------------------------------------------------------------------------

function modelOptions(models, selected) {
  const groups = [
    ["Base models", models.filter((m) => m.owned_by === BASE_MODEL_OWNER)],
    ["Fine-tuned models", models.filter((m) => m.owned_by !== BASE_MODEL_OWNER && !m.alias_for && !/:ckpt-step-\d+$/.test(m.id))],
    ["Checkpoints", models.filter((m) => m.owned_by !== BASE_MODEL_OWNER && !m.alias_for && /:ckpt-step-\d+$/.test(m.id))],
    ["Aliases", models.filter((m) => m.alias_for)],
  ];
  const known = new Set(models.map((m) => m.id));
  return [
    ...(selected && !known.has(selected) ? [h("option", { value: selected, selected: true }, selected)] : []),
    ...groups.filter(([, list]) => list.length).map(([label, list]) =>
      h("optgroup", { label }, list.map((m) => h("option", { value: m.id, selected: m.id === selected }, m.id)))),
  ];
}

function renderPlayground(query) {
  const wanted = query.get("model");
  const system = h("textarea", { id: "system-prompt", rows: 2, placeholder: "Optional, e.g. You answer questions about Veloria." });
  const temperature = h("input", { type: "number", id: "temperature", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = h("input", { type: "number", id: "max-tokens", min: 1, max: 4096, step: 1, value: 128 });
  const compare = h("input", { type: "checkbox", id: "compare" });
  const prompt = h("textarea", { id: "prompt", rows: 3, placeholder: "Ask something…", required: true });
  const send = h("button", { class: "primary", type: "submit", id: "send" }, "Send");
  const stop = h("button", { type: "button", id: "stop", disabled: true }, "Stop");
  const clear = h("button", { type: "button", id: "clear" }, "Clear");
  const out = h("div");
  const panelsEl = h("div", { class: "panels", id: "panels" });
  const controllers = new Set();

  function panel(name) {
    const select = h("select", { id: `model-${name}`, "aria-label": `model ${name}` });
    const transcript = h("div", { class: "transcript", id: `transcript-${name}` });
    const el = h("div", { class: "card panel", "data-panel": name }, h("label", { for: `model-${name}` }, name === "a" ? "Model" : "Compare with"), select, transcript);
    return { name, select, transcript, el, history: [] };
  }
  const panels = [panel("a"), panel("b")];
  panelsEl.append(panels[0].el, panels[1].el);
  panels[1].el.hidden = true;

  compare.addEventListener("change", () => {
    panels[1].el.hidden = !compare.checked;
  });

  main.append(
    h("h1", {}, "Playground"),
    h("div", { class: "card" },
      h("div", { class: "controls" },
        h("div", { class: "field" }, h("label", { for: "system-prompt" }, "System prompt"), system),
        h("div", { class: "field" }, h("label", { for: "temperature" }, "Temperature ", h("span", { class: "hint" }, "0: greedy")), temperature),
        h("div", { class: "field" }, h("label", { for: "max-tokens" }, "Max tokens"), maxTokens)),
      h("label", { class: "hint" }, compare, " Side by side: the same prompt to a second model")),
    out,
    panelsEl,
  );
  const form = h("form", { class: "card", id: "chat-form" },
    h("div", { class: "field" }, h("label", { for: "prompt" }, "Message"), prompt),
    h("div", { class: "row" }, send, stop, clear));
  main.append(form);

  api("/v1/models").then(({ data }) => {
    const a = wanted || data.find((m) => m.owned_by !== BASE_MODEL_OWNER)?.id || data[0]?.id;
    panels[0].select.replaceChildren(...modelOptions(data, a));
    const b = a && a !== baseOf(a) ? baseOf(a) : data.find((m) => m.id !== a)?.id || a;
    panels[1].select.replaceChildren(...modelOptions(data, b));
    if (wanted && wanted !== baseOf(wanted)) {
      compare.checked = true;
      panels[1].el.hidden = false;
    }
  }, (e) => out.replaceChildren(errorBox(e)));

  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });
  clear.addEventListener("click", () => {
    for (const p of panels) {
      p.history = [];
      p.transcript.replaceChildren();
    }
    out.replaceChildren();
  });
  stop.addEventListener("click", () => {
    for (const c of controllers) c.abort();
  });

  async function ask(p, text) {
    const user = { role: "user", content: text };
    p.history.push(user);
    p.transcript.append(h("div", { class: "msg user" }, h("span", { class: "who" }, "you"), text));
    const answer = h("span", { class: "answer" });
    const bubble = h("div", { class: "msg assistant", "data-model": p.select.value }, h("span", { class: "who" }, p.select.value), answer);
    p.transcript.append(bubble);
    const messages = [...(system.value.trim() ? [{ role: "system", content: system.value.trim() }] : []), ...p.history];
    const controller = new AbortController();
    controllers.add(controller);
    try {
      const { text: full, finish } = await streamChat(
        { model: p.select.value, messages, temperature: Number(temperature.value) || 0, max_tokens: Number(maxTokens.value) || 128 },
        (piece) => {
          answer.append(piece);
          p.transcript.scrollTop = p.transcript.scrollHeight;
        },
        controller.signal,
      );
      p.history.push({ role: "assistant", content: full });
      bubble.dataset.done = finish || "stop";
      if (finish === "length") bubble.append(h("span", { class: "who" }, "(cut at max tokens)"));
    } catch (e) {
      p.history.pop();
      bubble.dataset.done = "error";
      bubble.append(e.name === "AbortError" ? h("span", { class: "who" }, "(stopped)") : errorBox(e));
    } finally {
      controllers.delete(controller);
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = "";
    send.disabled = true;
    stop.disabled = false;
    const active = compare.checked ? panels : [panels[0]];
    await Promise.all(active.map((p) => ask(p, text)));
    send.disabled = false;
    stop.disabled = true;
    prompt.focus();
  });
  return () => {
    for (const c of controllers) c.abort();
  };
}

// --- Files -----------------------------------------------------------------------------------

function renderFiles() {
  const body = h("tbody");
  const out = h("div", { id: "files-error" });
  const upload = fileField("upload-file", "Upload a dataset", "JSONL, purpose fine-tune", true);
  const uploadForm = h("form", { class: "card", id: "upload-form" }, upload.el, h("button", { class: "primary", type: "submit" }, "Upload"));
  main.append(
    h("h1", {}, "Files"),
    uploadForm,
    out,
    h("div", { class: "card table-wrap" },
      h("table", { id: "files-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Name"), h("th", { class: "wide-only" }, "Purpose"),
          h("th", { class: "num" }, "Size"), h("th", { class: "wide-only" }, "Created"), h("th", {}, ""))),
        body)),
  );
  async function load() {
    try {
      const files = await listAll("/v1/files", { max: 1000 });
      body.replaceChildren(...files.map((f) =>
        h("tr", { "data-file": f.id },
          h("td", { class: "id mono small" }, f.id),
          h("td", {}, f.filename),
          h("td", { class: "wide-only" }, f.purpose),
          h("td", { class: "num" }, fmtBytes(f.bytes)),
          h("td", { class: "wide-only" }, fmtTime(f.created_at)),
          h("td", {}, h("div", { class: "row" },
            h("button", { type: "button", class: "link", onclick: () => download(f.id, f.filename).catch((e) => out.replaceChildren(errorBox(e))) }, "Download"),
            h("button", { type: "button", class: "link delete", onclick: () => remove(f) }, "Delete"))))));
      if (files.length === 0) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No files yet.")));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  }
  async function remove(f) {
    if (!confirm(`Delete ${f.filename} (${f.id})?`)) return;
    try {
      await api(`/v1/files/${f.id}`, { method: "DELETE" });
      out.replaceChildren();
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
    load();
  }
  uploadForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.replaceChildren();
    try {
      const f = await uploadFile(upload.input.files[0]);
      out.replaceChildren(h("p", { class: "muted" }, `Uploaded ${f.filename} as ${f.id}.`));
      uploadForm.reset();
      upload.el.querySelector(".small").replaceChildren();
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
    load();
  });
  load();
  return null;
}

// --- Models ----------------------------------------------------------------------------------

function renderModels() {
  const body = h("tbody");
  const out = h("div", { id: "models-error" });
  main.append(
    h("h1", {}, "Models"),
    out,
    h("div", { class: "card table-wrap" },
      h("table", { id: "models-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "Kind"), h("th", { class: "wide-only" }, "Created"), h("th", {}, ""))),
        body)),
  );
  async function load() {
    try {
      const { data } = await api("/v1/models");
      body.replaceChildren(...data.map((m) => {
        const base = m.owned_by === BASE_MODEL_OWNER;
        const kind = base ? "base" : m.alias_for ? `alias of ${m.alias_for}` : /:ckpt-step-\d+$/.test(m.id) ? "checkpoint" : "fine-tuned";
        return h("tr", { "data-model": m.id },
          h("td", { class: "id mono small" }, m.id),
          h("td", {}, kind),
          h("td", { class: "wide-only" }, m.created ? fmtTime(m.created) : "—"),
          h("td", {}, h("div", { class: "row" },
            h("a", { href: playgroundLink(m.id) }, "Chat"),
            base ? null : h("button", { type: "button", class: "link delete", onclick: () => remove(m) }, "Delete"))));
      }));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  }
  async function remove(m) {
    const what = m.alias_for ? `the alias ${m.id} (${m.alias_for} stays)` : `${m.id}? It can no longer be served.`;
    if (!confirm(`Delete ${what}`)) return;
    try {
      const path = m.alias_for ? "/v1/models/aliases/" : "/v1/models/";
      await api(`${path}${encodeURIComponent(m.id)}`, { method: "DELETE" });
      out.replaceChildren();
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
    load();
  }
  load();
  return null;
}

route();
