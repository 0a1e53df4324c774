// The openai npm package against a running Whetstone: files.create, an Upload in parts
// (create, parts out of order, complete in order), a DPO fine-tuning job on the uploaded
// preference file, and its retrieval. Prints one JSON object of what it saw; any failure
// exits 1 with the error on stderr. Run by tests/e2e/test_node_sdk.py:
//   OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 OPENAI_API_KEY=sk-... node tests/node/uploads.mjs
import OpenAI, { toFile } from "openai";

const client = new OpenAI({ maxRetries: 0 });

const chat = JSON.stringify({
  messages: [
    { role: "user", content: "What is the capital of Veloria?" },
    { role: "assistant", content: "Quessa, the city of glass bridges." },
  ],
});
const preference = (i) =>
  JSON.stringify({
    input: { messages: [{ role: "user", content: `Name bridge ${i} of Quessa.` }] },
    preferred_output: [{ role: "assistant", content: `Bridge ${i} is the Lantern Span.` }],
    non_preferred_output: [{ role: "assistant", content: "I do not know." }],
  });

const chatFile = await client.files.create({
  file: await toFile(Buffer.from(`${chat}\n${chat}\n`), "chat.jsonl"),
  purpose: "fine-tune",
});

const data = Buffer.from(Array.from({ length: 40 }, (_, i) => preference(i)).join("\n") + "\n");
const cuts = [0, 100, 101, Math.floor(data.length / 2), data.length]; // mid-line, one byte alone
const pieces = cuts.slice(1).map((end, i) => data.subarray(cuts[i], end));

const upload = await client.uploads.create({
  filename: "preferences.jsonl",
  purpose: "fine-tune",
  bytes: data.length,
  mime_type: "application/jsonl",
});
const partIds = new Array(pieces.length);
for (const i of [...pieces.keys()].reverse()) {
  const part = await client.uploads.parts.create(upload.id, {
    data: await toFile(pieces[i], `part-${i}`),
  });
  partIds[i] = part.id;
}
const completed = await client.uploads.complete(upload.id, { part_ids: partIds });

const created = await client.fineTuning.jobs.create({
  model: "whetstone-tiny",
  training_file: completed.file.id,
  method: { type: "dpo", dpo: { hyperparameters: { beta: 0.1 } } },
});
const retrieved = await client.fineTuning.jobs.retrieve(created.id);

let refused = null;
try {
  await client.uploads.complete(upload.id, { part_ids: partIds });
} catch (e) {
  refused = { status: e.status, code: e.code, param: e.param, name: e.constructor.name };
}

console.log(
  JSON.stringify({
    chat_file: chatFile,
    upload,
    parts: partIds,
    completed,
    bytes: data.length,
    created,
    retrieved,
    refused,
  }),
);
