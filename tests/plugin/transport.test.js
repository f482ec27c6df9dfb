"use strict";
// How the plugin chooses between its WebSocket and the HTTP transport (BdApi.Net.fetch), against
// the real relay server: the fallback when Local Network Access blocks the socket, what the owner
// is told, a link idle for longer than Net.fetch's 3 s default timeout, and a poll broken on the way.
// The rest of the plugin suite runs over both transports (DAR_TRANSPORT=websocket|http).

const assert = require("node:assert/strict");
const http = require("node:http");
const { before, after, afterEach, describe, it } = require("node:test");

const { META, loadPlugin, setup, waitFor, sleep, freePort, startFakeOpenAI, RelayServer, echoedText } = require("./harness");

const RULES = [
    ["111", "222"],
    ["*", "351"],
    ["*", "352"],
    ["*", "353"],
];

let llm;
let server;
const running = [];

before(async () => {
    llm = await startFakeOpenAI();
    server = await new RelayServer({ port: await freePort(), llm, rules: RULES }).start();
});

after(async () => {
    while (running.length) running.pop().stop();
    await server?.dispose();
    await llm?.stop();
});

afterEach(() => {
    while (running.length) running.pop().stop();
});

function started(context) {
    context.plugin.start();
    running.push(context.plugin);
    return context;
}

const statusLine = (plugin) => plugin.statusLine();
const repliesIn = (discord, channel) => discord.sent.filter((call) => call.channelId === channel).map((call) => call.message.content);
const connectionsLogged = () => (server.output.match(/plugin connected from/g) ?? []).length;

describe("transports", () => {
    it("auto: a WebSocket blocked by Local Network Access falls back to HTTP, says why, and answers", async () => {
        const { plugin, discord, spy, net, fake } = started(setup({ settings: { ...server.settings, transport: "auto" }, lna: true }));
        await waitFor(() => plugin.status === "connected", { what: `a welcome over HTTP; server log:\n${server.output}` });
        assert.equal(plugin.transport, "http");
        assert.equal(spy.sockets[0].closeEvent.code, 1006, "the WebSocket was blocked before connecting");
        assert.ok(net.calls.every((call) => !("origin" in call.headers) && !("Origin" in call.headers)), "Net.fetch sends no Origin");
        assert.match(statusLine(plugin), /connected over HTTP \(BetterDiscord's Net\.fetch\)/);
        assert.match(statusLine(plugin), /refused at once .*Local Network Access/);
        assert.ok(fake.logs.some((log) => log.level === "warn" && /Local Network Access/.test(log.text)), "logged once");

        discord.receive({ channel_id: "351", author: { id: "901", username: "x" }, content: "over http" });
        await waitFor(() => repliesIn(discord, "351").length === 1, { what: "the reply posted through Discord" });
        assert.equal(echoedText(repliesIn(discord, "351")[0]), "over http");
        assert.ok(spy.received.some((frame) => frame.type === "send"), "the reply came as a send frame over HTTP");
    });

    it("auto with the server down: one toast naming why each transport failed, then the backoff", async () => {
        const port = await freePort();
        const { plugin, fake, net, spy } = started(setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: true, transport: "auto" }, lna: false }));
        await waitFor(() => spy.sockets.length >= 2 && net.calls.filter((call) => call.url.includes("/plugin/open")).length >= 2, { what: "two rounds of attempts" });
        const unreachable = fake.toasts.filter((toast) => /not reachable/.test(toast.content));
        assert.equal(unreachable.length, 1, "told once");
        assert.match(unreachable[0].content, /WebSocket: .*; HTTP: .*ECONNREFUSED/);
        assert.equal(plugin.status, "reconnecting");
        assert.match(statusLine(plugin), /last try: WebSocket .*; HTTP .*ECONNREFUSED/);
    });

    it("auto: a WebSocket refused at once while HTTP answers (not our server's welcome) names Local Network Access", async () => {
        const stranger = http.createServer((request, response) => response.writeHead(503).end("maintenance"));
        await new Promise((resolve) => stranger.listen(0, "127.0.0.1", resolve));
        try {
            const settings = { host: "127.0.0.1", port: stranger.address().port, secret: "x", enabled: true, transport: "auto" };
            const { fake } = started(setup({ settings, lna: true }));
            const toast = await waitFor(() => fake.toasts.find((each) => /not reachable/.test(each.content)), { what: "the toast" });
            assert.match(toast.content, /WebSocket: refused before the handshake after \d+ ms; HTTP: HTTP 503/);
            assert.match(toast.content, /refused at once while HTTP answers: .*Local Network Access/);
        } finally {
            while (running.length) running.pop().stop();
            stranger.closeAllConnections();
            await new Promise((resolve) => stranger.close(resolve));
        }
    });

    it("HTTP only: never opens a WebSocket; Connect with switches the transport and reconnects", async () => {
        const { plugin, spy, net } = started(setup({ settings: { ...server.settings, transport: "http" }, lna: false }));
        await waitFor(() => plugin.status === "connected", { what: "a welcome over HTTP" });
        assert.equal(plugin.transport, "http");
        assert.equal(spy.sockets.filter((socket) => socket.transport !== "http").length, 0, "no WebSocket");
        assert.ok(net.calls.every((call) => call.timeout > 0 && Number.isFinite(call.timeout)), "a finite timeout on every request");

        const panel = plugin.getSettingsPanel();
        const choice = panel.find((element) => element.name === "transport");
        choice.value = "websocket";
        choice.dispatchEvent({ type: "change" });
        await waitFor(() => plugin.status === "connected" && plugin.transport === "websocket", { what: "a welcome over the WebSocket" });
        assert.match(statusLine(plugin), /connected over WebSocket/);
    });

    it("HTTP: a link idle for longer than Net.fetch's 3 s default keeps delivering, at once, on the same session", async () => {
        const { plugin, discord, net } = started(setup({ settings: { ...server.settings, transport: "http" }, lna: false }));
        await waitFor(() => plugin.status === "connected", { what: "a welcome over HTTP" });
        const connections = connectionsLogged();
        await sleep(4000); // nothing to say: the server holds the poll
        assert.deepEqual(net.calls.filter((call) => call.outcome === "error"), [], "no request timed out");
        const sentAt = Date.now();
        discord.receive({ channel_id: "352", author: { id: "902", username: "x" }, content: "after a long quiet" });
        await waitFor(() => repliesIn(discord, "352").length === 1, { what: "the reply after the idle period" });
        assert.ok(Date.now() - sentAt < 2000, `answered in ${Date.now() - sentAt} ms, not at a polling interval`);
        assert.equal(connectionsLogged(), connections, "the same session all along");
        assert.equal(plugin.status, "connected");
    });

    it("HTTP: a poll broken on the way is asked again, and its frames come again without a duplicate", async () => {
        const { plugin, discord, net, spy } = started(setup({ settings: { ...server.settings, transport: "http" }, lna: false }));
        await waitFor(() => plugin.status === "connected", { what: "a welcome over HTTP" });
        const connections = connectionsLogged();
        const heldPoll = () => net.calls.find((call) => call.url.includes("/plugin/poll") && !call.closed);
        const poll = await waitFor(heldPoll, { what: "a held poll" });
        poll.destroy(new Error("socket hang up")); // as a reset connection would
        discord.receive({ channel_id: "353", author: { id: "903", username: "x" }, content: "after a broken poll" });
        await waitFor(() => repliesIn(discord, "353").length === 1, { what: "the reply" });
        discord.receive({ channel_id: "353", author: { id: "903", username: "x" }, content: "and another" });
        await waitFor(() => repliesIn(discord, "353").length === 2, { what: "the next reply" });
        assert.deepEqual(repliesIn(discord, "353").map(echoedText), ["after a broken poll", "and another"], "each once");
        assert.equal(connectionsLogged(), connections, "the session survived the broken poll");
        const sends = spy.received.filter((frame) => frame.type === "send" && frame.channel === "353");
        assert.equal(new Set(sends.map((frame) => frame.nonce)).size, 2);
    });

    it("HTTP only without BdApi.Net (BetterDiscord before 1.9.4): says so and keeps retrying", async () => {
        const context = setup({ settings: { ...server.settings, transport: "http" }, lna: false });
        const { BdApi } = context.fake;
        // BdApi as BetterDiscord before 1.9.4 had it: everything else, but no Net.
        const OldBdApi = function OldBdApi(name) {
            return new BdApi(name);
        };
        for (const key of ["Webpack", "UI", "React", "Data", "Logger"]) OldBdApi[key] = BdApi[key];
        const Plugin = loadPlugin({ BdApi: OldBdApi, WebSocket: context.spy.WebSocket, document: context.document });
        const plugin = new Plugin(META, { backoff: { baseMs: 20, capMs: 100 } });
        plugin.start();
        running.push(plugin);
        await waitFor(() => plugin.status === "reconnecting", { what: "the failed attempt" });
        assert.match(statusLine(plugin), /BdApi\.Net\.fetch is missing/);
        assert.ok(context.fake.toasts.some((toast) => /HTTP: BdApi\.Net\.fetch is missing/.test(toast.content)));
    });
});
