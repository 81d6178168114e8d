// A Node worker for tests/workers/test_node_worker.py: SKILLWIRE_URL and SKILLWIRE_KEY from the
// environment; prints "ready <worker id>" after each welcome and "aborted <work id>" on cancel.
import { SkillFailure, Worker } from "../../clients/js/skillwire-worker.js";

const worker = new Worker(process.env.SKILLWIRE_URL, {
  key: process.env.SKILLWIRE_KEY,
  name: "node-test",
  concurrency: 2,
  backoff: { initial: 0.05, maximum: 0.5 },
});
const textSchema = { type: "object", properties: { text: { type: "string" } }, required: ["text"] };

worker.skill("node", "reverse", { description: "Reverse a text", inputSchema: textSchema }, async (input, ctx) => {
  await ctx.progress(0.5, "half way");
  return { type: "text", text: [...input.text].reverse().join("") };
});

worker.skill("node", "spell", { inputSchema: textSchema, mode: "long" }, async (input, ctx) => {
  const out = await ctx.stream({ type: "text", text: "" });
  for (const letter of input.text) await out.append(letter);
  ctx.setResult({ letters: input.text.length });
});

worker.skill("node", "refuse", { inputSchema: textSchema }, async (input) => {
  throw new SkillFailure(input.text, "REFUSED", { from: "node" });
});

worker.skill("node", "wait", { inputSchema: { type: "object" }, mode: "long" }, (input, ctx) =>
  new Promise((resolve) => {
    ctx.signal.addEventListener("abort", () => {
      console.log(`aborted ${ctx.workId}`);
      resolve();
    });
  }),
);

worker.onReady = (id) => console.log(`ready ${id}`);
process.on("SIGTERM", () => worker.stop());
worker.run().then(
  () => process.exit(0),
  (error) => {
    console.log(`refused ${error.message}`);
    process.exit(3);
  },
);
