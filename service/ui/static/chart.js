// The loss chart, drawn with Chart.js from npm (served at /ui/vendor/chart.js/ from
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

/** `{train: [{x, y}], valid: [{x, y}]}` from a job's `metrics` events, by step. */
export function lossSeries(events) {
  const train = new Map();
  const valid = new Map();
  for (const e of events) {
    if (e.type !== "metrics" || !e.data || typeof e.data.step !== "number") continue;
    if (typeof e.data.train_loss === "number") train.set(e.data.step, e.data.train_loss);
    if (typeof e.data.valid_loss === "number") valid.set(e.data.step, e.data.valid_loss);
  }
  const points = (m) => [...m].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
  return { train: points(train), valid: points(valid) };
}

/** A line chart on `canvas`; `update(series)` redraws it with new points. */
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
    update(series) {
      chart.data.datasets[0].data = series.train;
      chart.data.datasets[1].data = series.valid;
      chart.update("none");
      canvas.dataset.points = String(series.train.length + series.valid.length);
    },
    destroy: () => chart.destroy(),
  };
}
