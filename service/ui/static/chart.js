// The loss (or reward) chart, drawn with Chart.js from npm (served at /ui/vendor/chart.js/ from
// node_modules). Without it (npm not run) the page says so and shows the numbers only.

const SRC = "/ui/vendor/chart.js/chart.umd.min.js";
let loading = null;

/** Resolves to the Chart constructor, or null when the library cannot be loaded. */
export function loadChart() {
  if (window.Chart) return Promise.resolve(window.Chart);
  loading ??= new Promise((resolve) => {
    const script = document.createElement("script");
    script.src = SRC;
    script.onload = () => resolve(window.Chart ?? null);
    script.onerror = () => resolve(null);
    document.head.append(script);
  });
  return loading;
}

/** What a chart plots: the losses, or a reinforcement job's mean grader rewards. */
export const KINDS = {
  loss: { train: "train_loss", valid: "valid_loss", label: "loss" },
  reward: { train: "train_reward_mean", valid: "valid_reward_mean", label: "reward" },
};

/** The kind of chart for a job: rewards for a reinforcement job, losses for the others. */
export const chartKind = (job) => (job?.method?.type === "reinforcement" ? "reward" : "loss");

/** `{train: [{x, y}], valid: [{x, y}]}` from a job's `metrics` events, by step: the losses,
 * or with `kind` "reward" the mean rewards. */
export function lossSeries(events, kind = "loss") {
  const keys = KINDS[kind];
  const train = new Map();
  const valid = new Map();
  for (const e of events) {
    if (e.type !== "metrics" || !e.data || typeof e.data.step !== "number") continue;
    if (typeof e.data[keys.train] === "number") train.set(e.data.step, e.data[keys.train]);
    if (typeof e.data[keys.valid] === "number") valid.set(e.data.step, e.data[keys.valid]);
  }
  const points = (m) => [...m].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
  return { train: points(train), valid: points(valid) };
}

/** A line chart on `canvas`; `update(series, kind)` redraws it with new points (and the
 * labels of `kind`, "loss" or "reward"). */
export function lossChart(Chart, canvas) {
  const chart = new Chart(canvas, {
    type: "line",
    data: {
      datasets: [
        { label: "train loss", data: [], borderColor: "#2563eb", backgroundColor: "#2563eb" },
        { label: "validation loss", data: [], borderColor: "#ea580c", backgroundColor: "#ea580c" },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      elements: { point: { radius: 2 }, line: { borderWidth: 2, tension: 0.2 } },
      scales: {
        x: { type: "linear", title: { display: true, text: "step" } },
        y: { title: { display: true, text: "loss" } },
      },
    },
  });
  return {
    chart,
    update(series, kind = "loss") {
      const label = KINDS[kind].label;
      chart.data.datasets[0].label = `train ${label}`;
      chart.data.datasets[1].label = `validation ${label}`;
      chart.options.scales.y.title.text = label;
      chart.data.datasets[0].data = series.train;
      chart.data.datasets[1].data = series.valid;
      chart.update("none");
      canvas.dataset.points = String(series.train.length + series.valid.length);
      canvas.dataset.kind = kind;
    },
    destroy: () => chart.destroy(),
  };
}
