// A first look at a JSONL dataset in the browser, before anything is sent: each line must be
// a JSON object in the chat format (`messages`) or the preference format (`input`, ...).
// The server checks every line again, fully; its 400 names the lines it refuses.

const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);
const MAX_REPORTED = 20;

function problem(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return "not a JSON object";
  }
  if ("input" in value && !("messages" in value)) {
    if (!("preferred_output" in value) || !("non_preferred_output" in value)) {
      return "a preference example needs `preferred_output` and `non_preferred_output`";
    }
    return null;
  }
  const messages = value.messages;
  if (!Array.isArray(messages) || messages.length === 0) {
    return "`messages` must be a non-empty list of messages";
  }
  for (const [i, m] of messages.entries()) {
    if (m === null || typeof m !== "object" || !ROLES.has(m.role)) {
      return `message ${i + 1}: \`role\` must be one of ${[...ROLES].join(", ")}`;
    }
  }
  if (!messages.some((m) => m.role === "assistant")) return "no assistant message to learn from";
  return null;
}

/** `{lines, errors: [{line, message}], truncated}` for the text of a JSONL file. */
export function checkJsonl(text) {
  const errors = [];
  let lines = 0;
  let truncated = false;
  text.split(/\r?\n/).forEach((raw, index) => {
    if (raw.trim() === "") return;
    lines += 1;
    let message;
    try {
      message = problem(JSON.parse(raw));
    } catch {
      message = "invalid JSON";
    }
    if (message) {
      if (errors.length < MAX_REPORTED) errors.push({ line: index + 1, message });
      else truncated = true;
    }
  });
  if (lines === 0) errors.push({ line: 0, message: "the file has no examples" });
  return { lines, errors, truncated };
}
