// The openai npm package drives a DPO job to its end against a running Whetstone (API and
// scheduler): the preference file sent through an Upload, the job created with `beta`,
// polled until final, its events listed with the SDK's auto-pagination. Prints one JSON
// object of what it saw. Run by tests/e2e/test_dpo_job.py:
//   OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=sk-... node tests/node/dpo.mjs
import OpenAI, { toFile } from "openai";

const client = new OpenAI({ maxRetries: 0 });
const model = process.env.WHETSTONE_DPO_MODEL ?? "whetstone-tiny";
const data = Buffer.from(process.env.WHETSTONE_DPO_FILE, "base64");

const upload = await client.uploads.create({
  filename: "preferences.jsonl",
  purpose: "fine-tune",
  bytes: data.length,
  mime_type: "application/jsonl",
});
const half = Math.floor(data.length / 2);
const partIds = [];
for (const piece of [data.subarray(0, half), data.subarray(half)]) {
  partIds.push((await client.uploads.parts.create(upload.id, { data: await toFile(piece, "p") })).id);
}
const completed = await client.uploads.complete(upload.id, { part_ids: partIds });

const job = await client.fineTuning.jobs.create({
  model,
  training_file: completed.file.id,
  method: {
    type: "dpo",
    dpo: { hyperparameters: { beta: 0.1, n_epochs: 1, batch_size: 4, learning_rate_multiplier: 5 } },
  },
});
let done = job;
const deadline = Date.now() + 240_000;
while (!["succeeded", "failed", "cancelled"].includes(done.status) && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 500));
  done = await client.fineTuning.jobs.retrieve(job.id);
}
const events = [];
for await (const event of client.fineTuning.jobs.listEvents(job.id, { limit: 5 })) {
  events.push(event);
}
console.log(JSON.stringify({ completed, job: done, events }));
