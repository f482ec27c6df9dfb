"use strict";
// Test harness: load the real plugin file with a fake BdApi, spy on its websocket, and run the
// real Python server (and the fake OpenAI API) as child processes.

const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const vm = require("node:vm");

const { createFakeBdApi, createFakeDiscord, createFakeDocument } = require("./fake-bdapi");
const { createFakeNet, createLocalNetworkBlock } = require("./fake-net");

const REPO = path.resolve(__dirname, "..", "..");
const PLUGIN_PATH = path.join(REPO, "plugin", "discord-auto-reply.plugin.js");
// The project's venv Python (bin/ on POSIX, Scripts\ on Windows), else the one on PATH.
const VENV_PYTHONS = [path.join(REPO, ".venv", "bin", "python"), path.join(REPO, ".venv", "Scripts", "python.exe")];
const PYTHON = process.env.PYTHON || VENV_PYTHONS.find((candidate) => fs.existsSync(candidate)) || (process.platform === "win32" ? "python" : "python3");
const META = { name: "DiscordAutoReply", version: "0.1.0", author: "test", description: "test" };
const FAST_BACKOFF = { baseMs: 20, capMs: 100 };
const DISCORD_ORIGIN = "https://discord.com";
// DAR_TRANSPORT=http runs every plugin test with loopback WebSockets blocked as LNA does, so the
// plugin (transport "auto") falls back to HTTP through BdApi.Net.fetch; "websocket" is the default.
const TRANSPORT = process.env.DAR_TRANSPORT || "websocket";
if (!["websocket", "http"].includes(TRANSPORT)) throw new Error(`DAR_TRANSPORT must be "websocket" or "http", not ${JSON.stringify(TRANSPORT)}`);

/**
 * Evaluate the plugin source as BetterDiscord does (a CommonJS-style `module`), with `BdApi`,
 * `WebSocket`, `document` and the page's `fetch` as its globals; `require` is not available to it.
 */
function loadPlugin({ BdApi, WebSocket = globalThis.WebSocket, document, fetch = globalThis.fetch, source = fs.readFileSync(PLUGIN_PATH, "utf8") }) {
    const wrapper = vm.runInThisContext(`(function (module, exports, BdApi, WebSocket, document, require, fetch) {${source}\n})`, { filename: PLUGIN_PATH });
    const module = { exports: {} };
    wrapper(module, module.exports, BdApi, WebSocket, document, undefined, fetch);
    return module.exports;
}

/**
 * A WebSocket subclass recording every socket, frame sent and frame received. Like the socket in
 * Discord's renderer it sends an `Origin` header (undici's `headers` extension); null sends none.
 * With `lna`, loopback sockets fail at once as Chromium's Local Network Access makes them (still
 * recorded in `sockets`, as the blocked sockets they are).
 */
function spyWebSocket({ origin = DISCORD_ORIGIN, lna = null } = {}) {
    const spy = { sockets: [], sent: [], received: [], dropIncoming: null };
    const record = (socket) => {
        socket.index = spy.sockets.length;
        socket.closeEvent = null;
        spy.sockets.push(socket);
        socket.addEventListener("message", (event) => spy.received.push({ socket: socket.index, ...JSON.parse(event.data) }));
        socket.addEventListener("close", (event) => {
            socket.closeEvent = { code: event.code, reason: event.reason };
        });
    };
    spy.WebSocket = class SpyWebSocket extends globalThis.WebSocket {
        constructor(url, protocols) {
            super(url, origin ? { protocols, headers: { Origin: origin } } : protocols);
            record(this);
        }

        send(data) {
            spy.sent.push({ socket: this.index, ...JSON.parse(data) });
            super.send(data);
        }

        // Lets a test hide chosen frames from the plugin (e.g. an ack that "got lost").
        set onmessage(handler) {
            super.onmessage = handler && ((event) => {
                if (spy.dropIncoming?.(JSON.parse(event.data))) return;
                handler(event);
            });
        }

        get onmessage() {
            return super.onmessage;
        }
    };
    if (lna) spy.WebSocket = lna.WebSocket(spy.WebSocket, { onBlocked: record });
    spy.messages = () => spy.sent.filter((frame) => frame.type === "message");
    spy.net = netRecorder(spy);
    return spy;
}

/**
 * Hooks for createFakeNet that put the frames the plugin exchanges over HTTP in `spy.sent` and
 * `spy.received` as the WebSocket spy does. A POST body `{"frames": [...]}` is frames sent; a
 * response (a whole JSON body, or line by line: NDJSON, or SSE `data:` lines) with a `frames` array
 * is frames received, each unwrapped from `{seq, frame}`; a bare frame (or `{seq, frame}`) is one.
 * Each hello sent opens an HTTP session, recorded in `spy.sockets` (transport "http") so frames
 * carry its index as `socket`; its `readyState` is OPEN (1) while one of its requests is open, else
 * CLOSED (3); its `close()` destroys the session's open requests, as a dropped connection. `spy.dropIncoming` filters frames out of responses whose headers arrive while it is
 * set (line by line, so a body without newlines is held to its end).
 */
function netRecorder(spy) {
    let session = null;
    const unwrap = (item) => (item && typeof item === "object" && "frame" in item ? item.frame : item);
    const framesOf = (value) => {
        if (Array.isArray(value?.frames)) return value.frames.map(unwrap);
        const frame = unwrap(value);
        return frame && typeof frame === "object" && typeof frame.type === "string" ? [frame] : [];
    };
    const parse = (text) => {
        const json = text.trim().replace(/^data:\s*/, "");
        if (!json) return null;
        try {
            return { value: JSON.parse(json) };
        } catch {
            return null;
        }
    };
    const sessionIndex = () => session?.index ?? spy.sockets.length - 1;
    const receivedText = new Map(); // call -> {pending, any}
    const receive = (call, text) => {
        const parsed = parse(text);
        if (!parsed) return false;
        for (const frame of framesOf(parsed.value)) spy.received.push({ socket: call.session ?? sessionIndex(), ...frame });
        return true;
    };
    const dropped = new Set(); // ids of the sessions whose every request fails, as on a dead link
    const sessionId = (call) => new URL(call.url).searchParams.get("session");
    const bodyFrames = (body) => {
        const whole = parse(body);
        if (whole) return framesOf(whole.value);
        return body.split("\n").flatMap((line) => framesOf(parse(line)?.value)); // one frame per line
    };
    return {
        onRequest(call) {
            if (dropped.has(sessionId(call))) setImmediate(() => call.destroy?.(new Error("connection dropped by the test")));
            const frames = call.body ? bodyFrames(call.body) : [];
            if (frames.some((frame) => frame.type === "hello")) {
                const calls = [];
                const id = sessionId(call);
                session = {
                    transport: "http",
                    index: spy.sockets.length,
                    closeEvent: null,
                    calls,
                    // OPEN while one of its requests is open (a session always holds a poll), then CLOSED.
                    get readyState() {
                        return calls.some((each) => !each.closed) ? 1 : 3;
                    },
                    /** The link dies: open requests are dropped, and every later one of this session fails. */
                    close: () => {
                        dropped.add(id);
                        calls.forEach((each) => each.destroy?.(new Error("connection dropped by the test")));
                    },
                };
                spy.sockets.push(session);
            }
            call.session = session?.index ?? null;
            session?.calls.push(call);
            for (const frame of frames) spy.sent.push({ socket: sessionIndex(), ...frame });
        },
        onResponseText(call, text) {
            const state = receivedText.get(call) ?? { pending: "", any: false, whole: "" };
            receivedText.set(call, state);
            state.whole += text;
            state.pending += text;
            const cut = state.pending.lastIndexOf("\n") + 1;
            for (const line of state.pending.slice(0, cut).split("\n")) state.any = receive(call, line) || state.any;
            state.pending = state.pending.slice(cut);
        },
        onResponseEnd(call) {
            const state = receivedText.get(call);
            if (!state) return;
            receivedText.delete(call);
            if (state.any) receive(call, state.pending);
            else receive(call, state.whole); // one JSON body, maybe over several lines
        },
        rewrite() {
            const drop = spy.dropIncoming;
            if (!drop) return null;
            return (line) => {
                const parsed = parse(line);
                if (!parsed) return line;
                const prefix = /^\s*data:\s*/.exec(line)?.[0] ?? "";
                const value = parsed.value;
                if (Array.isArray(value?.frames)) return prefix + JSON.stringify({ ...value, frames: value.frames.filter((item) => !drop(unwrap(item))) });
                return framesOf(value).some((frame) => drop(frame)) ? "" : line;
            };
        },
    };
}

/**
 * A fresh fake Discord + BdApi + spy, and a constructed (not yet started) plugin. `lna` blocks
 * loopback WebSockets and page fetches as Chromium's Local Network Access does (the default with
 * DAR_TRANSPORT=http, which also sets the plugin's transport to "auto"); `net` is BdApi.Net's
 * recorder (createFakeNet: its `calls`, `inFlight`), also `fake.net`.
 */
function setup({ settings, missing, echo, router, keepNonce, backoff = FAST_BACKOFF, options, origin, lna = TRANSPORT === "http" } = {}) {
    const discord = createFakeDiscord({ missing, echo, router, keepNonce });
    const document = createFakeDocument();
    const block = lna ? createLocalNetworkBlock() : null;
    const spy = spyWebSocket({ origin, lna: block });
    const net = createFakeNet(spy.net);
    const fake = createFakeBdApi(discord, { document, net });
    // Each suite runs over one transport: the WebSocket forced, or "auto" falling back to HTTP.
    if (settings) settings = { ...settings, transport: settings.transport ?? (TRANSPORT === "http" ? "auto" : "websocket") };
    if (settings) fake.data.set(META.name, "settings", settings);
    const Plugin = loadPlugin({ BdApi: fake.BdApi, WebSocket: spy.WebSocket, document, fetch: block ? block.fetch() : globalThis.fetch });
    const plugin = new Plugin(META, { backoff, ...options });
    return { discord, fake, spy, net, lna: block, plugin, Plugin, document };
}

async function waitFor(predicate, { timeout = 8000, interval = 10, what = "condition" } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
        const value = await predicate();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
        await sleep(interval);
    }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort() {
    const server = net.createServer();
    await new Promise((resolve, reject) => server.listen(0, "127.0.0.1", resolve).on("error", reject));
    const { port } = server.address();
    await new Promise((resolve) => server.close(resolve));
    return port;
}

/** The key the fake OpenAI API accepts: `FakeOpenAI.API_KEY` in tests/fakes/openai_api.py. */
function fakeOpenAIKey() {
    const source = fs.readFileSync(path.join(REPO, "tests", "fakes", "openai_api.py"), "utf8");
    const match = source.match(/^\s*API_KEY\s*=\s*"([^"]+)"/m);
    if (!match) throw new Error("API_KEY not found in tests/fakes/openai_api.py");
    return match[1];
}

/** A child process whose output we keep, and which we can wait on and stop. */
class Child {
    constructor(args, { cwd = REPO, stdin = "ignore" } = {}) {
        this.output = "";
        this.process = spawn(PYTHON, args, { cwd, stdio: [stdin, "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });
        this.exited = new Promise((resolve) => this.process.once("exit", (code, signal) => resolve({ code, signal })));
        this.lines = [];
        this.waiters = [];
        for (const stream of [this.process.stdout, this.process.stderr]) {
            readline.createInterface({ input: stream }).on("line", (line) => {
                this.output += line + "\n";
                this.lines.push(line);
                for (const waiter of [...this.waiters]) waiter(line);
            });
        }
        children.add(this);
    }

    /** Resolve with the first line (already seen or future) matching `test`. */
    waitForLine(test, { timeout = 20000, what = String(test) } = {}) {
        const matches = (line) => (typeof test === "string" ? line.includes(test) : test.test(line));
        const seen = this.lines.find(matches);
        if (seen) return Promise.resolve(seen);
        return new Promise((resolve, reject) => {
            const done = (error, line) => {
                clearTimeout(timer);
                this.waiters = this.waiters.filter((w) => w !== onLine);
                if (error) reject(error);
                else resolve(line);
            };
            const onLine = (line) => matches(line) && done(null, line);
            const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}; output so far:\n${this.output}`)), timeout);
            this.waiters.push(onLine);
            this.exited.then(({ code, signal }) => done(new Error(`process exited (${code ?? signal}) before ${what}; output:\n${this.output}`)));
        });
    }

    async stop() {
        children.delete(this);
        if (this.process.exitCode === null && this.process.signalCode === null) {
            this.process.kill("SIGTERM");
            const timer = setTimeout(() => this.process.kill("SIGKILL"), 5000);
            await this.exited;
            clearTimeout(timer);
        }
    }
}

const children = new Set();
process.on("exit", () => {
    for (const child of children) child.process.kill("SIGKILL");
});

/** `python -m tests.fakes.openai_api`: prints its base URL when listening. */
async function startFakeOpenAI({ delay = 0 } = {}) {
    const child = new Child(["-m", "tests.fakes.openai_api", "--delay", String(delay)]);
    const url = (await child.waitForLine(/^http:\/\/127\.0\.0\.1:\d+\/v1$/, { what: "the fake OpenAI URL" })).trim();
    return { child, url, key: fakeOpenAIKey(), stop: () => child.stop() };
}

/**
 * The real relay server: `python -m server serve --config … --reply-config …` in a temp dir.
 * `start()` resolves once it logs `listening on ws://127.0.0.1:PORT`; it can be stopped and started
 * again on the same port.
 */
class RelayServer {
    constructor({ port, llm, rules, config = {}, personas = null }) {
        this.port = port;
        this.secret = crypto.randomBytes(18).toString("base64url");
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "dar-plugin-test-"));
        this.configPath = path.join(this.dir, "config.json");
        this.rulesPath = path.join(this.dir, "reply_config.py");
        const settings = {
            WEBSOCKET_PORT: port,
            WEBSOCKET_SECRET: this.secret,
            MESSENGER: "plugin",
            LLM_BACKENDS: ["openai"],
            OPENAI_BASE_URL: llm.url,
            OPENAI_API_KEY: llm.key,
            REPLY_PREFIX: "[auto-reply] ",
            // Answer at once, and keep answering after the owner's own messages in a chat: these
            // suites test the plugin; bursts and takeover are tested in Python (test_conversations_e2e).
            COALESCE_SECONDS: 0,
            TYPING_DELAY_SECONDS: 0, // the typing test needs no LLM slower than the default delay
            TAKEOVER_MINUTES: 0,
            REPLY_WHEN: "always", // reply whatever the owner's presence; away-mode tests set "away"
            ...config,
        };
        fs.writeFileSync(this.configPath, JSON.stringify(settings, null, 2));
        this.personas = personas;
        this.writeRules(rules);
        this.child = null;
    }

    /**
     * Rules as [user, channel] or [user, channel, {options}] (string and number options only), and
     * the server's `personas` ({name: prompt}) when given.
     */
    writeRules(rules) {
        const pairs = rules.map(([user, channel, options]) => `    (${[user, channel, ...(options ? [options] : [])].map((part) => JSON.stringify(part)).join(", ")}),`).join("\n");
        const personas = this.personas ? `PERSONAS = ${JSON.stringify(this.personas)}\n` : "";
        fs.writeFileSync(this.rulesPath, `CONTEXT_MESSAGE = "You are helpful."\n${personas}REPLY_TO = [\n${pairs}\n]\n`);
    }

    get settings() {
        return { host: "127.0.0.1", port: this.port, secret: this.secret, enabled: true };
    }

    async start() {
        this.child = new Child(["-m", "server", "serve", "--config", this.configPath, "--reply-config", this.rulesPath, "-v"]);
        await this.child.waitForLine(`listening on ws://127.0.0.1:${this.port}`, { what: "the relay server to listen" });
        return this;
    }

    async stop() {
        if (this.child) await this.child.stop();
    }

    get output() {
        return this.child?.output ?? "";
    }

    async dispose() {
        await this.stop();
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

/**
 * The real gateway alone (`python -m tests.gateway_driver`), asked to open channels through the
 * connected plugin and to tell the last activity the plugin reported.
 */
class GatewayDriver {
    constructor() {
        this.secret = crypto.randomBytes(18).toString("base64url");
        this.child = null;
        this.port = null;
    }

    async start() {
        this.child = new Child(["-m", "tests.gateway_driver", `--secret=${this.secret}`], { stdin: "pipe" });
        const line = await this.child.waitForLine(/^listening on \d+$/, { what: "the gateway driver to listen" });
        this.port = Number(line.split(" ").at(-1));
        return this;
    }

    get settings() {
        return { host: "127.0.0.1", port: this.port, secret: this.secret, enabled: true };
    }

    /** Send one command line; resolve with the driver's JSON answer to it. */
    async ask(command) {
        const seen = this.child.lines.length;
        this.child.process.stdin.write(command + "\n");
        const answer = await waitFor(() => this.child.lines.slice(seen).find((line) => line.startsWith("{")), { what: `an answer to ${command}; output:\n${this.child.output}` });
        return JSON.parse(answer);
    }

    /** `Gateway.open_channel(channel, timeoutSeconds)` through the plugin: its `opened` answer. */
    openChannel(channel, timeoutSeconds = 5) {
        return this.ask(`open ${channel} ${timeoutSeconds}`);
    }

    async lastActivity() {
        return (await this.ask("activity")).last_activity;
    }

    async stop() {
        if (this.child) await this.child.stop();
    }
}

/** Parse "[auto-reply] echo: TEXT [turns=N]" from the fake LLM's default reply. */
function echoedText(content) {
    const match = /^\[auto-reply\] echo: (.*) \[turns=\d+\]$/s.exec(content);
    return match ? match[1] : null;
}

module.exports = { REPO, PLUGIN_PATH, PYTHON, META, FAST_BACKOFF, TRANSPORT, loadPlugin, spyWebSocket, setup, waitFor, sleep, freePort, startFakeOpenAI, RelayServer, GatewayDriver, echoedText };
