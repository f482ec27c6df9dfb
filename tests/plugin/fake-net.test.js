"use strict";
// The fakes in fake-net.js against a real Node http server: BetterDiscord's Net.fetch (timeouts,
// streaming, abort, headers, redirects) and the LNA switch (loopback WebSockets and fetch refused).

const assert = require("node:assert/strict");
const http = require("node:http");
const net = require("node:net");
const { after, before, describe, it } = require("node:test");

const { createFakeNet, createLocalNetworkBlock, isLoopbackUrl } = require("./fake-net");
const { spyWebSocket } = require("./harness");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const HOLD_MS = 3500;

let server;
let base;
const seen = []; // every request the server got: {url, method, headers, body}
const streamState = { ended: false };

before(async () => {
    server = http.createServer(async (req, res) => {
        let body = "";
        for await (const chunk of req) body += chunk;
        seen.push({ url: req.url, method: req.method, headers: req.headers, body });
        const url = new URL(req.url, base);
        if (url.pathname === "/hold") {
            await sleep(Number(url.searchParams.get("ms")));
            if (!res.destroyed) res.end("held");
        } else if (url.pathname === "/headers-then-hold") {
            res.writeHead(200, { "content-type": "text/plain" });
            res.write("first\n");
            await sleep(HOLD_MS);
            if (!res.destroyed) res.end("late\n");
        } else if (url.pathname === "/stream") {
            streamState.ended = false;
            res.writeHead(200, { "content-type": "application/x-ndjson" });
            res.write('{"n":1}\n');
            await sleep(300);
            streamState.ended = true;
            res.end('{"n":2}\n');
        } else if (url.pathname === "/echo") {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify({ method: req.method, headers: req.headers, body, query: url.search }));
        } else if (url.pathname === "/redirect") {
            res.writeHead(302, { location: `${base}/echo?to=1` });
            res.end();
        } else if (url.pathname === "/poll") {
            res.writeHead(200, { "content-type": "application/json" });
            res.end(JSON.stringify({ frames: [{ seq: 1, frame: { type: "welcome" } }, { seq: 2, frame: { type: "ack", id: "7" } }] }));
        } else if (url.pathname === "/frames-stream") {
            res.writeHead(200, { "content-type": "application/x-ndjson" });
            res.write(JSON.stringify({ seq: 3, frame: { type: "send", nonce: "n1" } }) + "\n");
            await sleep(50);
            res.end(JSON.stringify({ frames: [{ type: "ack", id: "8" }] }) + "\n");
        } else if (url.pathname === "/empty") {
            res.writeHead(204);
            res.end();
        } else {
            res.writeHead(404);
            res.end("not found");
        }
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
    server.closeAllConnections();
    server.close();
});

describe("Net.fetch's inactivity timeout (Node's socket timeout, as BetterDiscord's preload)", { concurrency: true }, () => {
    it("rejects a request held longer than the default 3 s with 'Request timed out'", async () => {
        const fake = createFakeNet();
        const started = Date.now();
        await assert.rejects(fake.fetch(`${base}/hold?ms=${HOLD_MS}`), { message: "Request timed out" });
        const took = Date.now() - started;
        assert.ok(took >= 2900 && took < HOLD_MS, `rejected after ${took} ms`);
        assert.equal(fake.calls[0].timeout, 3000);
        assert.equal(fake.calls[0].outcome, "error");
    });

    it("treats timeout: null as the default 3 s", async () => {
        const fake = createFakeNet();
        await assert.rejects(fake.fetch(`${base}/hold?ms=${HOLD_MS}`, { timeout: null }), { message: "Request timed out" });
    });

    it("keeps a request held 3.5 s with timeout: 10000, and with 0 (no timer)", async () => {
        const fake = createFakeNet();
        const [long, none] = await Promise.all([
            fake.fetch(`${base}/hold?ms=${HOLD_MS}`, { timeout: 10000 }),
            fake.fetch(`${base}/hold?ms=${HOLD_MS}`, { timeout: 0 }),
        ]);
        assert.equal(await long.text(), "held");
        assert.equal(await none.text(), "held");
        await waitFor(() => fake.inFlight === 0);
    });

    it("errors the body stream when a response that has started goes quiet for 3 s", async () => {
        const fake = createFakeNet();
        const response = await fake.fetch(`${base}/headers-then-hold`);
        assert.equal(response.status, 200);
        const reader = response.body.getReader();
        assert.equal(new TextDecoder().decode((await reader.read()).value), "first\n");
        await assert.rejects(reader.read());
        assert.ok(fake.calls[0].streamError, "the stream's error is recorded");
        assert.equal(fake.calls[0].ended, false);
    });
});

describe("Net.fetch's requests and responses", () => {
    it("streams the body chunk by chunk: the first chunk arrives before the response ends", async () => {
        const fake = createFakeNet();
        const response = await fake.fetch(`${base}/stream`, { timeout: 10000 });
        assert.ok(response instanceof Response);
        const reader = response.body.getReader();
        const first = await reader.read();
        assert.equal(new TextDecoder().decode(first.value), '{"n":1}\n');
        assert.equal(streamState.ended, false, "the server had not ended the response yet");
        assert.equal(fake.inFlight, 1);
        let rest = "";
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
        assert.equal(rest, '{"n":2}\n');
        assert.equal(fake.calls[0].responseText, '{"n":1}\n{"n":2}\n');
        assert.equal(fake.calls[0].ended, true);
        await waitFor(() => fake.inFlight === 0);
    });

    it("rejects with the signal's reason when aborted, before or during the request", async () => {
        const fake = createFakeNet();
        const controller = new AbortController();
        const held = fake.fetch(`${base}/hold?ms=2000`, { signal: controller.signal, timeout: 10000 });
        await sleep(50);
        assert.equal(fake.inFlight, 1);
        controller.abort();
        await assert.rejects(held, { name: "AbortError" });
        await assert.rejects(fake.fetch(`${base}/echo`, { signal: AbortSignal.abort() }), { name: "AbortError" });
        await waitFor(() => fake.inFlight === 0);
        assert.deepEqual(fake.calls.map((call) => call.outcome), ["error", "error"]);
    });

    it("sends only the headers given (never an Origin), the body chunked, and records the call", async () => {
        const fake = createFakeNet();
        const frames = JSON.stringify({ frames: [{ type: "hello" }] });
        const init = { method: "POST", headers: { Authorization: "Bearer s3cret", Origin: "https://discord.com", "Content-Type": "application/json" }, body: frames, timeout: 5000 };
        const pending = fake.fetch(`${base}/echo`, init);
        assert.equal(fake.calls.length, 1, "recorded in the caller's tick");
        const answer = await (await pending).json();
        assert.equal(answer.method, "POST");
        assert.equal(answer.body, frames);
        assert.equal(answer.headers.authorization, "Bearer s3cret");
        assert.equal(answer.headers["content-type"], "application/json");
        assert.equal(answer.headers.origin, undefined, "no Origin reaches the server");
        assert.equal(answer.headers["transfer-encoding"], "chunked", "the preload writes the body as a stream");
        assert.equal(answer.headers.connection, "close");
        assert.deepEqual(Object.keys(answer.headers).sort(), ["authorization", "connection", "content-type", "host", "transfer-encoding"]);
        const [call] = fake.calls;
        assert.deepEqual({ method: call.method, body: call.body, status: call.status, outcome: call.outcome }, { method: "POST", body: frames, status: 200, outcome: "response" });
        assert.deepEqual(call.headers, { authorization: "Bearer s3cret", "content-type": "application/json" });

        const get = await (await fake.fetch(`${base}/echo`)).json();
        assert.equal(get.method, "GET");
        assert.equal(get.headers.origin, undefined);
    });

    it("follows a redirect keeping the query, gives 204 no body, rejects other protocols", async () => {
        const fake = createFakeNet();
        const redirected = await fake.fetch(`${base}/redirect?keep=yes`);
        assert.equal(redirected.redirected, true);
        assert.equal(redirected.url, `${base}/echo?to=1&keep=yes`);
        assert.equal((await redirected.json()).query, "?to=1&keep=yes");
        await assert.rejects(fake.fetch(`${base}/redirect`, { redirect: "error" }), { message: "Failed to fetch" });
        assert.equal((await fake.fetch(`${base}/redirect`, { redirect: "manual" })).status, 302);
        const empty = await fake.fetch(`${base}/empty`);
        assert.equal(empty.status, 204);
        assert.equal(empty.body, null);
        await assert.rejects(fake.fetch("ftp://127.0.0.1/file"), { message: "Unsupported protocol: ftp:" });
    });

    it("lets a harness rewrite the body line by line before the caller reads it", async () => {
        const fake = createFakeNet({ rewrite: (call) => call.url.endsWith("/stream") && ((line) => line.replace('"n":2', '"n":20')) });
        const text = await (await fake.fetch(`${base}/stream`)).text();
        assert.equal(text, '{"n":1}\n{"n":20}\n');
        assert.equal(fake.calls[0].responseText, '{"n":1}\n{"n":2}\n', "the record keeps what the server sent");
    });
});

describe("the harness's frame recorder over Net.fetch", () => {
    it("records frames sent and received, opens a session per hello, and drops chosen frames", async () => {
        const spy = spyWebSocket({ lna: createLocalNetworkBlock() });
        const fake = createFakeNet(spy.net);
        const post = (frames) => fake.fetch(`${base}/echo`, { method: "POST", body: JSON.stringify({ frames }) }).then((r) => r.text());
        await post([{ type: "hello", secret: "s" }]);
        assert.equal(spy.sockets.length, 1);
        assert.equal(spy.sockets[0].transport, "http");
        await waitFor(() => spy.sockets[0].readyState === 3); // no request of the session is open
        assert.deepEqual(await (await fake.fetch(`${base}/poll`)).json(), { frames: [{ seq: 1, frame: { type: "welcome" } }, { seq: 2, frame: { type: "ack", id: "7" } }] });
        await post([{ type: "message", id: "7" }]);
        assert.deepEqual(spy.sent, [{ socket: 0, type: "hello", secret: "s" }, { socket: 0, type: "message", id: "7" }]);
        assert.deepEqual(spy.messages().map((frame) => frame.id), ["7"]);
        assert.deepEqual(spy.received, [{ socket: 0, type: "welcome" }, { socket: 0, type: "ack", id: "7" }]);

        spy.dropIncoming = (frame) => frame.type === "ack";
        const reader = (await fake.fetch(`${base}/frames-stream`)).body.getReader();
        const first = new TextDecoder().decode((await reader.read()).value);
        assert.equal(JSON.parse(first).frame.type, "send", "a line arrives while the rest streams");
        assert.deepEqual(spy.received.at(-1), { socket: 0, type: "send", nonce: "n1" });
        let rest = "";
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
        assert.deepEqual(JSON.parse(rest), { frames: [] }, "the ack is hidden from the caller");
        assert.deepEqual(spy.received.at(-1), { socket: 0, type: "ack", id: "8" }, "and still recorded");

        await post([{ type: "hello", secret: "s" }]);
        assert.equal(spy.sockets.length, 2);
        assert.equal(spy.sent.at(-1).socket, 1);
    });
});

describe("the LNA switch (Chromium's Local Network Access refusing loopback)", () => {
    it("knows loopback hosts", () => {
        for (const url of ["ws://127.0.0.1:8765", "ws://127.8.9.10/", "ws://localhost:1", "http://app.localhost/", "ws://[::1]:8765", "http://[::ffff:127.0.0.1]/"]) assert.ok(isLoopbackUrl(url), url);
        for (const url of ["wss://gateway.discord.gg", "ws://192.168.1.2:8765", "ws://128.0.0.1/", "ws://localhost.example.com/", "not a url"]) assert.ok(!isLoopbackUrl(url), url);
    });

    it("fails a loopback WebSocket at once like Chromium: error, then close 1006, no connection", async () => {
        let connections = 0;
        const listener = net.createServer((socket) => {
            connections += 1;
            socket.destroy();
        });
        await new Promise((resolve) => listener.listen(0, "127.0.0.1", resolve));
        try {
            const lna = createLocalNetworkBlock();
            const recorded = [];
            const Blocked = lna.WebSocket(globalThis.WebSocket, { onBlocked: (socket) => recorded.push(socket) });
            const url = `ws://127.0.0.1:${listener.address().port}/`;
            const socket = new Blocked(url);
            assert.equal(socket.readyState, Blocked.CONNECTING);
            assert.equal(socket.url, url);
            assert.deepEqual(recorded, [socket]);
            assert.throws(() => socket.send("x"), { name: "InvalidStateError" });
            const events = [];
            socket.addEventListener("open", () => events.push("open"));
            socket.onerror = () => events.push("error");
            const closed = new Promise((resolve) => {
                socket.onclose = (event) => {
                    events.push(`close ${event.code}`);
                    resolve(event);
                };
            });
            const event = await closed;
            assert.deepEqual(events, ["error", "close 1006"]);
            assert.equal(event.wasClean, false);
            assert.equal(event.reason, "");
            assert.equal(socket.readyState, WebSocket.CLOSED);
            await sleep(100);
            assert.equal(connections, 0, "the server saw nothing");
            assert.deepEqual(lna.blocked, [url]);

            // Another host goes to the real WebSocket (TEST-NET-1: never answers; closed at once).
            const other = new Blocked("ws://192.0.2.1:9/");
            assert.ok(other instanceof globalThis.WebSocket);
            other.onerror = () => {};
            other.close();
            assert.equal(recorded.length, 1);
        } finally {
            listener.close();
        }
    });

    it("rejects a page fetch to loopback with TypeError('Failed to fetch') and passes others on", async () => {
        const lna = createLocalNetworkBlock();
        const passed = [];
        const pageFetch = lna.fetch(async (input) => {
            passed.push(String(input));
            return new Response("ok");
        });
        const before = seen.length;
        await assert.rejects(pageFetch(`${base}/echo`), (error) => error instanceof TypeError && error.message === "Failed to fetch");
        await assert.rejects(pageFetch(new Request("http://localhost:1/")), TypeError);
        assert.equal(await (await pageFetch("https://discord.com/api")).text(), "ok");
        assert.deepEqual(passed, ["https://discord.com/api"]);
        await sleep(50);
        assert.equal(seen.length, before, "the server saw nothing");
    });
});

async function waitFor(predicate, timeout = 2000) {
    const deadline = Date.now() + timeout;
    while (!predicate()) {
        if (Date.now() > deadline) throw new Error("timed out");
        await sleep(10);
    }
}
