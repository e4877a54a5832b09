// The official openai npm client against a running reprise serve: completions and chat, plain and streaming, and
// extra_body's layer_schedule. usage: node test_openai.mjs BASE_URL EXPECTED_JSON (greedy texts from reprise generate)
import OpenAI from "openai";

const [baseURL, expectedJson] = process.argv.slice(2);
const expected = JSON.parse(expectedJson);
const client = new OpenAI({ baseURL, apiKey: "unused" });
let failed = 0;
function check(cond, what) {
  console.log(`${cond ? "ok" : "FAIL"}: openai client: ${what}`);
  if (!cond) failed++;
}

const models = await client.models.list();
const model = models.data[0].id;
check(models.data.length === 1, `models.list: ${model}`);

const c = await client.completions.create({ model, prompt: "99*99=", max_tokens: 8, temperature: 0 });
check(c.choices[0].text === expected.completion, `completions.create: ${JSON.stringify(c.choices[0].text)}`);
check(c.usage.completion_tokens > 0 && c.choices[0].finish_reason === "stop", "usage and finish_reason");

// layer_schedule, what the Python SDK sends through extra_body: the Node SDK sends fields it does not know as they are
const x = await client.completions.create({ model, prompt: "99*99=", max_tokens: 8, temperature: 0, layer_schedule: "rys:2,4" });
check(x.choices[0].text === expected.rys && x.layer_schedule === "rys:2,4", `extra field layer_schedule: ${x.choices[0].text}`);

let streamed = "";
const s = await client.completions.create({ model, prompt: "99*99=", max_tokens: 8, temperature: 0, stream: true });
for await (const chunk of s) streamed += chunk.choices[0]?.text ?? "";
check(streamed === expected.completion, `streaming completion: ${JSON.stringify(streamed)}`);

const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: "12+34=" }], max_tokens: 8, temperature: 0 });
check(chat.choices[0].message.content === expected.chat && chat.choices[0].message.role === "assistant",
      `chat.completions.create: ${JSON.stringify(chat.choices[0].message.content)}`);

let chatStreamed = "", role = null;
const cs = await client.chat.completions.create({ model, messages: [{ role: "user", content: "12+34=" }], max_tokens: 8,
                                                  temperature: 0, stream: true, stream_options: { include_usage: true } });
let usage = null;
for await (const chunk of cs) {
  if (chunk.usage) usage = chunk.usage;
  const d = chunk.choices[0]?.delta;
  if (d?.role) role = d.role;
  chatStreamed += d?.content ?? "";
}
check(chatStreamed === expected.chat && role === "assistant" && usage && usage.completion_tokens > 0,
      `streaming chat: ${JSON.stringify(chatStreamed)}, usage ${JSON.stringify(usage)}`);

try {
  await client.completions.create({ model, prompt: "1", max_tokens: 8, layer_schedule: "0-3,x" });
  check(false, "a bad layer_schedule is refused");
} catch (e) {
  check(e.status === 400 && /'x'/.test(e.message), `a bad layer_schedule: ${e.status} ${e.message}`);
}
process.exit(failed ? 1 : 0);
