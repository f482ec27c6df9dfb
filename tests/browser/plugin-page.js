"use strict";
// The page the Chromium tests open as https://discord.com/app, after tests/plugin/fake-bdapi.js:
// the fake Discord client and BdApi on `window`, and the real plugin file evaluated as
// BetterDiscord does (a CommonJS `module`, `BdApi` a global, the page's own WebSocket).
// BdApi.Net.fetch is made outside the page, as BetterDiscord's preload makes it: the test's Python
// (tests/browser/plugin_page.py NetBridge) exposes darNetFetch/darNetRead/darNetAbort.

/** Every WebSocket the page opens, with what it sent, received and went through. */
const sockets = [];
globalThis.WebSocket = class RecordedWebSocket extends globalThis.WebSocket {
    constructor(...args) {
        super(...args);
        this.events = [];
        this.sent = [];
        this.received = [];
        sockets.push(this);
        this.addEventListener("open", () => this.events.push("open"));
        this.addEventListener("error", () => this.events.push("error"));
        this.addEventListener("close", (event) => this.events.push(`close ${event.code}`));
        this.addEventListener("message", (event) => this.received.push(JSON.parse(event.data)));
    }

    send(data) {
        this.sent.push(JSON.parse(data));
        super.send(data);
    }
};

const NET_METHODS = new Set(["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE"]);
const BODYLESS_STATUS_CODES = new Set([101, 204, 205, 304]);
/** Every Net.fetch call: {url, method, headers, body, timeout (as given), status, error, text (what the caller read)}. */
const netCalls = [];
let netIds = 0;

/**
 * BdApi.Net.fetch as BetterDiscord's renderer half builds it (src/betterdiscord/api/fetch.ts): the
 * page's Request normalises the call (Chromium drops forbidden headers such as Origin), the timeout
 * is `init.timeout ?? 3000`, and the Response's body streams what the preload reads, chunk by chunk.
 * An aborted signal rejects with its reason and drops the request outside.
 */
async function netFetch(input, init) {
    const request = input instanceof Request ? input : new Request(input instanceof URL ? input.href : input, init);
    const timeout = init?.timeout ?? 3000;
    const call = { url: request.url, method: NET_METHODS.has(request.method) ? request.method : "GET", headers: Object.fromEntries(request.headers), body: request.body ? await request.text() : null, timeout: init?.timeout, status: null, error: null, text: "" };
    netCalls.push(call);
    const id = ++netIds;
    const signal = request.signal;
    const aborted = new Promise((resolve, reject) => {
        const onAbort = () => {
            globalThis.darNetAbort(id);
            reject(signal.reason ?? new Error("Request was aborted"));
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => {});
    try {
        // Node's timer turns a timeout past its maximum (Infinity included) into 1 ms.
        const sent = { id, url: call.url, method: call.method, headers: call.headers, body: call.body, timeout: Number.isFinite(timeout) && timeout <= 2147483647 ? timeout : 1, redirect: request.redirect, maxRedirects: init?.maxRedirects ?? 20 };
        const head = await Promise.race([globalThis.darNetFetch(sent), aborted]);
        call.status = head.status;
        const stream = BODYLESS_STATUS_CODES.has(head.status) ? null : new ReadableStream({
            async pull(controller) {
                const chunk = await Promise.race([globalThis.darNetRead(id), aborted]);
                if (chunk === null) return controller.close();
                const bytes = Uint8Array.from(atob(chunk), (c) => c.charCodeAt(0));
                call.text += new TextDecoder().decode(bytes, { stream: true });
                controller.enqueue(bytes);
            },
            cancel() {
                globalThis.darNetAbort(id);
            },
        });
        const response = new Response(stream, { status: head.status, statusText: head.statusText, headers: head.headers });
        Object.defineProperties(response, { url: { value: head.url }, redirected: { value: head.redirected } });
        return response;
    } catch (error) {
        call.error = String(error?.message ?? error);
        throw error;
    }
}

/**
 * The frames of a Net.fetch body or response: one JSON value or one per line (NDJSON, SSE `data:`),
 * `{frames: [...]}` or a lone frame, each unwrapped from `{seq, frame}`.
 */
function framesOf(text) {
    const parse = (json) => {
        try {
            return [JSON.parse(json.replace(/^\s*data:\s*/, ""))];
        } catch {
            return null;
        }
    };
    const values = parse(String(text ?? "")) ?? String(text ?? "").split("\n").flatMap((line) => parse(line) ?? []);
    return values.flatMap((value) => (Array.isArray(value?.frames) ? value.frames : [value]))
        .map((item) => (item && typeof item === "object" && "frame" in item ? item.frame : item))
        .filter((frame) => frame && typeof frame === "object" && typeof frame.type === "string");
}

/** Load the plugin with these settings and start it; the test reads `window.relayTest`. */
globalThis.startPlugin = async ({ settings, backoff }) => {
    const source = await (await fetch("/discord-auto-reply.plugin.js")).text();
    const discord = FakeBdApi.createFakeDiscord();
    const fake = FakeBdApi.createFakeBdApi(discord, { document, net: { fetch: netFetch } });
    fake.data.set("DiscordAutoReply", "settings", settings);
    globalThis.BdApi = fake.BdApi;
    const module = { exports: {} };
    const evaluate = new Function("module", "exports", "require", `${source}\n//# sourceURL=discord-auto-reply.plugin.js`);
    evaluate(module, module.exports, undefined);
    const Plugin = module.exports;
    const plugin = new Plugin({ name: "DiscordAutoReply", version: "0.1.0", author: "test", description: "test" }, { backoff });
    plugin.start();
    globalThis.relayTest = {
        discord,
        fake,
        plugin,
        sockets,
        netCalls,
        /** Frames the plugin sent over HTTP (Net.fetch bodies), and those it read from responses. */
        httpSent: () => netCalls.flatMap((call) => framesOf(call.body)),
        httpReceived: () => netCalls.flatMap((call) => framesOf(call.text)),
        /** The plugin's message frames, as sent on every socket (with its index) and over HTTP ("http"). */
        forwarded: () => [
            ...sockets.flatMap((socket, index) => socket.sent.filter((frame) => frame.type === "message").map((frame) => ({ ...frame, socket: index }))),
            ...netCalls.flatMap((call) => framesOf(call.body)).filter((frame) => frame.type === "message").map((frame) => ({ ...frame, socket: "http" })),
        ],
        /** The replies posted through Discord's sendMessage. */
        replies: () => discord.sent.map((call) => ({ channel: call.channelId, content: call.message.content })),
    };
};
