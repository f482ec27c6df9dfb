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
const running = [];

before(async () => {
    gateway = await new GatewayDriver().start();
});

after(async () => {
    while (running.length) running.pop().stop();
    await gateway?.stop();
});

afterEach(async () => {
    while (running.length) running.pop().stop();
    await sleep(50); // let the gateway see the close before the next test's plugin connects
});

/** A started plugin welcomed by the gateway driver; short waits for tests. */
async function connected({ options, ...overrides } = {}) {
    const context = setup({ settings: gateway.settings, options: { openChannelTimeoutMs: 300, activityIntervalMs: 200, ...options }, ...overrides });
    context.plugin.start();
    running.push(context.plugin);
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
        const started = Date.now();
        let last = 0;
        while (Date.now() - started < 700) {
            for (const type of ["mousemove", "keydown", "wheel", "mousedown"]) document.dispatchEvent({ type });
            last = Date.now();
            await sleep(10);
        }
        await waitFor(() => activity().length && activity().at(-1).at >= last, { what: "the trailing activity report" });
        const reports = activity();
        const elapsed = Date.now() - started;
        // One report at once, then at most one per 200 ms: never one per event.
        assert.ok(reports.length >= 2 && reports.length <= Math.ceil(elapsed / 200) + 1, `${reports.length} reports in ${elapsed} ms`);
        assert.ok(reports[0].at - started < 100, "the first activity is reported at once");
        assert.deepEqual(errorsFromServer(spy), []);
        // The driver's stdin and the plugin's socket are separate paths: ask until the frame is in.
        const latest = reports.at(-1).at;
        await waitFor(async () => Math.abs((await gateway.lastActivity()) * 1000 - latest) < 1, { what: `the gateway to see activity at ${latest}` });
    });

    it("ignores events dispatched by scripts, and stops listening on stop()", async () => {
        const { document, spy, plugin } = await connected();
        document.dispatchEvent({ type: "keydown", isTrusted: false });
        await sleep(50);
        assert.equal(spy.sent.filter((frame) => frame.type === "activity").length, 0);
        assert.equal(document.listenerCount("keydown"), 1);
        plugin.stop();
        for (const type of ["keydown", "mousedown", "mousemove", "wheel"]) assert.equal(document.listenerCount(type), 0);
    });

    it("reports nothing on a socket the server has not welcomed yet", async () => {
        const context = setup({ settings: gateway.settings });
        context.spy.dropIncoming = (frame) => frame.type === "welcome";
        context.plugin.start();
        running.push(context.plugin);
        await waitFor(() => context.spy.sent.some((frame) => frame.type === "hello"), { what: "the hello" });
        context.document.dispatchEvent({ type: "keydown" });
        await sleep(50);
        assert.deepEqual(context.spy.sent.map((frame) => frame.type), ["hello"]);
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
        await sleep(120);
        assert.deepEqual(reports, [{ type: "activity", at: 1000 }, { type: "activity", at: 1060 }]);
        now = 1250;
        reporter.note();
        assert.deepEqual(reports.at(-1), { type: "activity", at: 1250 }, "after a quiet interval: at once");
        now = 1260;
        reporter.note();
        reporter.cancel();
        await sleep(120);
        assert.equal(reports.length, 3, "cancel() drops the pending report");
    });

    it("channelPath: @me for DMs, the guild otherwise", () => {
        assert.equal(channelPath("222", null), "/channels/@me/222");
        assert.equal(channelPath("333", "777"), "/channels/777/333");
    });
});
