"use strict";
// What the plugin does for the GUI macro, against the real gateway over a real websocket: it opens
// the reply's channel with Discord's router and confirms it (open_channel → opened), and it
// reports the person's keyboard and mouse activity, throttled.

const assert = require("node:assert/strict");
const { before, after, afterEach, describe, it } = require("node:test");

const { createFakeBdApi, createFakeDiscord } = require("./fake-bdapi");
const { loadPlugin, setup, waitFor, sleep, GatewayDriver } = require("./harness");

const { ActivityReporter, channelPath } = loadPlugin({ BdApi: createFakeBdApi(createFakeDiscord()).BdApi }).internals;

let gateway;
const running = []; // contexts of the plugins started by the current test

before(async () => {
    gateway = await new GatewayDriver().start();
});

after(async () => {
    while (running.length) running.pop().plugin.stop();
    await gateway?.stop();
});

afterEach(async () => {
    const stopped = running.splice(0);
    for (const { plugin } of stopped) plugin.stop();
    // The gateway asks its newest plugin: let each stopped plugin's close handshake finish (the
    // gateway has answered it, so it is dropping that socket) before the next test's plugin connects.
    const closed = () => stopped.every(({ spy }) => spy.sockets.every((socket) => socket.readyState === WebSocket.CLOSED));
    await waitFor(closed, { interval: 1, what: "the stopped plugins' sockets to close" });
});

/** A started plugin welcomed by the gateway driver; short waits for tests. */
async function connected({ options, ...overrides } = {}) {
    const context = setup({ settings: gateway.settings, options: { openChannelTimeoutMs: 300, activityIntervalMs: 200, ...options }, ...overrides });
    context.plugin.start();
    running.push(context);
    await waitFor(() => context.plugin.status === "connected", { what: `a welcome; driver output:\n${gateway.child.output}` });
    return context;
}

const errorsFromServer = (spy) => spy.received.filter((frame) => frame.type === "error");

describe("open_channel", () => {
    it("opens a DM with the router and confirms it once Discord shows it", async () => {
        const { discord, spy } = await connected();
        const opened = await gateway.openChannel("222");
        assert.deepEqual({ ...opened, nonce: typeof opened.nonce }, { type: "opened", nonce: "string", channel: "222", ok: true, focused: true, error: null });
        assert.deepEqual(discord.navigations, ["/channels/@me/222"]);
        assert.equal(discord.selectedChannelId(), "222");
        assert.deepEqual(errorsFromServer(spy), []);
    });

    it("opens a server channel under its guild, found with the current client's mangled router", async () => {
        const { discord } = await connected({ router: "mangled" });
        const opened = await gateway.openChannel("333");
        assert.equal(opened.ok, true, JSON.stringify(opened));
        assert.equal(opened.channel, "333");
        assert.deepEqual(discord.navigations, ["/channels/777/333"]);
    });

    it("does not navigate when the channel is already shown", async () => {
        const { discord } = await connected();
        discord.select("222");
        const opened = await gateway.openChannel("222");
        assert.equal(opened.ok, true);
        assert.deepEqual(discord.navigations, []);
    });

    it("answers ok: false with the channel Discord still shows when the switch does not happen", async () => {
        const { discord } = await connected();
        discord.navigationBlocked = true;
        const started = Date.now();
        const opened = await gateway.openChannel("222");
        assert.equal(opened.ok, false);
        assert.equal(opened.channel, "100");
        assert.match(opened.error, /^Discord still shows channel 100 after 300 ms$/);
        assert.ok(Date.now() - started >= 300, "waited for the switch before answering");
        assert.deepEqual(discord.navigations, ["/channels/@me/222"]);
    });

    it("answers focused: false when the Discord window does not have focus", async () => {
        const { document } = await connected();
        document.focused = false;
        const opened = await gateway.openChannel("222");
        assert.equal(opened.ok, true);
        assert.equal(opened.channel, "222");
        assert.equal(opened.focused, false);
    });

    for (const [missing, expected] of [
        ["router", /^Discord's router was not found in the client$/],
        ["selectedChannelStore", /SelectedChannelStore was not found/],
    ]) {
        it(`answers ok: false without navigating when the ${missing} is missing, and warns on a macro welcome`, async () => {
            const { discord, fake } = await connected({ missing: [missing] });
            const opened = await gateway.openChannel("222");
            assert.equal(opened.ok, false);
            assert.match(opened.error, expected);
            assert.deepEqual(discord.navigations, []);
            assert.ok(fake.toasts.some((toast) => /the GUI macro will not type anything/.test(toast.content)), JSON.stringify(fake.toasts));
        });
    }
});

describe("activity", () => {
    it("reports the person's input throttled, the last report carrying the latest time", async () => {
        const { document, spy } = await connected();
        const activity = () => spy.sent.filter((frame) => frame.type === "activity");
        // One burst of input; its events are noted at times within [before, after].
        const burst = () => {
            const before = Date.now();
            for (const type of ["mousemove", "keydown", "wheel", "mousedown"]) document.dispatchEvent({ type });
            return { before, after: Date.now() };
        };
        const first = burst();
        // At once: within dispatchEvent on a WebSocket, with the next post over HTTP.
        await waitFor(() => activity().length >= 1, { timeout: 1000, what: "the first activity, reported at once" });
        assert.equal(activity().length, 1, "one report for the first burst");
        assert.ok(activity()[0].at >= first.before && activity()[0].at <= first.after, "the first report carries the first burst's time");
        let last = first;
        while (Date.now() - first.before < 700) {
            await sleep(10); // pacing: a burst of input about every 10 ms
            last = burst();
        }
        // `before`, not `after`: the clock may tick between the last event and `after` is read.
        await waitFor(() => activity().at(-1).at >= last.before, { what: "the trailing activity report" });
        const reports = activity();
        const elapsed = Date.now() - first.before;
        assert.ok(reports.at(-1).at <= last.after, "the trailing report carries the last burst's time");
        // One report at once, then at most one per 200 ms: never one per event.
        assert.ok(reports.length >= 2 && reports.length <= Math.ceil(elapsed / 200) + 1, `${reports.length} reports in ${elapsed} ms`);
        assert.deepEqual(errorsFromServer(spy), []);
        // The driver's stdin and the plugin's socket are separate paths: ask until the frame is in.
        const latest = reports.at(-1).at;
        await waitFor(async () => Math.abs((await gateway.lastActivity()) * 1000 - latest) < 1, { what: `the gateway to see activity at ${latest}` });
    });

    it("ignores events dispatched by scripts, and stops listening on stop()", async () => {
        const { document, spy, plugin } = await connected();
        const activity = () => spy.sent.filter((frame) => frame.type === "activity");
        // The first activity after a quiet spell is reported at once, and the next only after the
        // interval: so an untrusted event that counted would take the first report, at its time.
        const untrustedAt = Date.now();
        document.dispatchEvent({ type: "keydown", isTrusted: false });
        while (Date.now() === untrustedAt) await sleep(1); // the trusted event's time is later
        const before = Date.now();
        document.dispatchEvent({ type: "keydown" });
        await waitFor(() => activity().length >= 1, { what: "the trusted event's report" });
        assert.equal(activity().length, 1, "one report");
        assert.ok(activity()[0].at >= before, "the report is the trusted event's");
        assert.equal(document.listenerCount("keydown"), 1);
        plugin.stop();
        for (const type of ["keydown", "mousedown", "mousemove", "wheel"]) assert.equal(document.listenerCount(type), 0);
    });

    it("reports nothing on a socket the server has not welcomed yet", async () => {
        const context = setup({ settings: gateway.settings, options: { welcomeTimeoutMs: 200 } });
        context.spy.dropIncoming = (frame) => frame.type === "welcome";
        context.plugin.start();
        running.push(context);
        const types = () => context.spy.sent.map((frame) => frame.type);
        await waitFor(() => types().includes("hello"), { what: "the hello" });
        context.document.dispatchEvent({ type: "keydown" });
        assert.deepEqual(types(), ["hello"], "no report at once");
        // The plugin gives up on the silent connection and says hello again on a new one: anything
        // the keydown set off on the first would have been sent before that.
        const hellos = () => context.spy.sent.filter((frame) => frame.type === "hello");
        await waitFor(() => hellos().length >= 2, { what: "a hello on a second connection" });
        assert.notEqual(hellos()[1].socket, hellos()[0].socket);
        assert.deepEqual(types().slice(0, 2), ["hello", "hello"]);
    });
});

describe("pure parts", () => {
    it("ActivityReporter: leading report, then one trailing report per interval with the latest time", async () => {
        let now = 1000; // the reporter's clock; its timer is real (due 100 ms after the last report)
        const reports = [];
        const reporter = new ActivityReporter((frame) => reports.push(frame), { intervalMs: 100, now: () => now });
        reporter.note();
        assert.deepEqual(reports, [{ type: "activity", at: 1000 }]);
        now = 1030;
        reporter.note();
        now = 1060;
        reporter.note();
        assert.equal(reports.length, 1, "nothing more within the interval");
        now = 1100;
        // Node runs due timers in the order they fall due: the reporter's (70 ms) before this one.
        await sleep(120);
        assert.deepEqual(reports, [{ type: "activity", at: 1000 }, { type: "activity", at: 1060 }]);
        now = 1250;
        reporter.note();
        assert.deepEqual(reports.at(-1), { type: "activity", at: 1250 }, "after a quiet interval: at once");
        now = 1260;
        reporter.note();
        reporter.cancel();
        await sleep(120); // after the cancelled timer (90 ms) would have fired: timers run in order
        assert.equal(reports.length, 3, "cancel() drops the pending report");
    });

    it("channelPath: @me for DMs, the guild otherwise", () => {
        assert.equal(channelPath("222", null), "/channels/@me/222");
        assert.equal(channelPath("333", "777"), "/channels/777/333");
    });
});
