"use strict";
// The plugin without the server: its file format, its pure decisions, the Discord adapter against
// the fake BdApi, settings, stop(), and reconnecting against a port where nothing listens.

const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const { describe, it, afterEach } = require("node:test");

const { createFakeBdApi, createFakeDiscord, SELF } = require("./fake-bdapi");
const { PLUGIN_PATH, META, loadPlugin, setup, waitFor, freePort } = require("./harness");

const source = fs.readFileSync(PLUGIN_PATH, "utf8");
const { internals } = loadPlugin({ BdApi: createFakeBdApi(createFakeDiscord()).BdApi });
const { messageFrame, isWatched, watchList, backoffDelay, Outbox, sendMessageArgs, normalizeSettings, startupSettings, serverUrl } = internals;

const running = [];
afterEach(() => {
    while (running.length) running.pop().stop();
});
function started(context) {
    context.plugin.start();
    running.push(context.plugin);
    return context;
}

const RETRY_BACKOFF = { baseMs: 10, capMs: 20 };

/**
 * Start a control plugin against `port`, where nothing listens, and wait for its fourth attempt:
 * with RETRY_BACKOFF its three retry delays add up to at least 5 + 10 + 10 ms, more than any one
 * delay (20 ms at most). Node runs timers in the order they fall due, so a retry that a plugin with
 * RETRY_BACKOFF had pending when the control started has had its turn, however slow the machine.
 */
async function afterControlRetries(port) {
    const control = setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: true }, backoff: RETRY_BACKOFF });
    control.plugin.start();
    try {
        await waitFor(() => control.spy.sockets.length >= 4, { what: "a control plugin's retries" });
    } finally {
        control.plugin.stop();
    }
}

function action(message, extra = {}) {
    return {
        type: "MESSAGE_CREATE",
        channelId: message.channel_id,
        guildId: message.guild_id,
        optimistic: false,
        isPushNotification: false,
        message: { id: "1300000000000000001", channel_id: "222", author: { id: "111", username: "friend" }, content: "hi", type: 0, flags: 0, timestamp: "2026-11-22T10:00:00.000Z", ...message },
        ...extra,
    };
}

describe("plugin file", () => {
    it("opens with the BetterDiscord meta header on line 1", () => {
        const lines = source.split("\n");
        assert.equal(lines[0], "/**");
        const header = source.slice(0, source.indexOf("*/"));
        assert.match(header, /^ \* @name DiscordAutoReply$/m);
        assert.match(header, /^ \* @version 0\.1\.0$/m);
        for (const tag of ["description", "author", "source"]) assert.match(header, new RegExp(`^ \\* @${tag} \\S`, "m"));
    });

    it("exports a class constructed with the meta, with start, stop and getSettingsPanel", () => {
        const { Plugin, plugin } = setup();
        assert.equal(typeof Plugin, "function");
        for (const method of ["start", "stop", "getSettingsPanel"]) assert.equal(typeof plugin[method], "function");
        assert.equal(plugin.meta, META);
    });

    it("uses no require, no Node APIs and none of the APIs BetterDiscord 1.13 removed", () => {
        const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
        for (const banned of [/\brequire\s*\(/, /\bprocess\./, /\bBuffer\b/, /byProps/, /findModuleByProps/, /BdApi\.showToast/, /\b(loadData|saveData|getData|setData)\b/]) {
            assert.doesNotMatch(code, banned);
        }
        const { BdApi } = createFakeBdApi(createFakeDiscord());
        assert.equal(BdApi.Webpack.Filters.byProps, undefined);
        assert.equal(BdApi.findModuleByProps, undefined);
        assert.equal(BdApi.showToast, undefined);
        assert.equal(BdApi.loadData, undefined);
        assert.equal(BdApi.saveData, undefined);
    });
});

describe("install defaults line", () => {
    it("is a single `const DEFAULT_SETTINGS = {...}; // @install-defaults` line", () => {
        const lines = source.split("\n").filter((line) => /\/\/ @install-defaults$/.test(line));
        assert.equal(lines.length, 1);
        assert.match(lines[0], /^const DEFAULT_SETTINGS = \{.*\}; \/\/ @install-defaults$/);
        assert.deepEqual({ ...internals.DEFAULT_SETTINGS }, { host: "127.0.0.1", port: 8765, secret: "", enabled: true });
    });
});

describe("messageFrame: what is forwarded", () => {
    it("builds a protocol v1 message frame with string ids", () => {
        const frame = messageFrame(action({ guild_id: "555", nonce: 42, author: { id: "111", username: "friend", bot: false } }), SELF.id);
        assert.deepEqual({ ...frame, author: { ...frame.author } }, {
            type: "message",
            id: "1300000000000000001",
            channel: "222",
            guild: "555",
            author: { id: "111", username: "friend", bot: false, display_name: "friend" },
            content: "hi",
            timestamp: "2026-11-22T10:00:00.000Z",
            self: false,
            nonce: "42",
            attachments: [],
            stickers: [],
            embeds: [],
            reference: null,
            forwarded: [],
        });
    });

    it("forwards attachments (a voice note with its length), stickers, link embeds, a reply and a forward", () => {
        const voiceFlag = 1 << 13;
        const url = "https://cdn.discordapp.com/attachments/222/9/voice-message.ogg?ex=1&is=2&hm=ab";
        const frame = messageFrame(
            action({
                content: "",
                flags: voiceFlag,
                author: { id: "111", username: "friend", global_name: "Friendly" },
                member: { nick: "Fren" },
                attachments: [{ id: "9", filename: "voice-message.ogg", content_type: "audio/ogg", size: 20480, url, proxy_url: "x", duration_secs: 12.4, waveform: "AAAA" }],
                sticker_items: [{ id: "5", name: "Wave", format_type: 1 }],
                embeds: [{ type: "link", title: "T".repeat(500), description: "About it", url: "https://example.com" }, { type: "image" }],
                referenced_message: { id: "8", author: { id: "7", username: "ann", global_name: "Ann" }, content: "x".repeat(1000), attachments: [{ filename: "plan.png", url: "u" }] },
                message_snapshots: [{ message: { content: "meet at 6", attachments: [] } }],
            }),
            SELF.id,
        );
        assert.equal(frame.author.display_name, "Fren", "the server nickname wins in guilds");
        assert.deepEqual(frame.attachments, [{ filename: "voice-message.ogg", content_type: "audio/ogg", size: 20480, url, width: null, height: null, voice: true, duration: 12.4 }]);
        assert.deepEqual(frame.stickers, ["Wave"]);
        assert.equal(frame.embeds.length, 1, "an embed with no title, description or URL is left out");
        assert.equal(frame.embeds[0].title.length, 200);
        assert.ok(frame.embeds[0].title.endsWith("…"));
        assert.equal(frame.reference.author, "Ann");
        assert.equal(frame.reference.content.length, 300);
        assert.deepEqual(frame.reference.attachments, ["plan.png"]);
        assert.deepEqual(frame.forwarded, [{ author: "", content: "meet at 6", attachments: [] }]);
    });

    it("forwards a message with a photo and no text; a photo is not a voice note", () => {
        const frame = messageFrame(action({ content: "", attachments: [{ filename: "beach.jpg", content_type: "image/jpeg", size: "10", url: "u", width: 640, height: 480 }] }), SELF.id);
        assert.equal(frame.content, "");
        assert.deepEqual(frame.attachments[0], { filename: "beach.jpg", content_type: "image/jpeg", size: 10, url: "u", width: 640, height: 480, voice: false, duration: null });
        assert.equal(frame.author.display_name, "friend", "no global name: the username");
        const odd = messageFrame(action({ attachments: [null, 3, { size: -1, width: "wide" }], embeds: "no", sticker_items: [{}], referenced_message: null }), SELF.id);
        assert.deepEqual(odd.attachments, [{ filename: "file", content_type: null, size: 0, url: "", width: null, height: null, voice: false, duration: null }]);
        assert.deepEqual([odd.embeds, odd.stickers, odd.reference], [[], [], null]);
    });

    it("reads the owner's custom status text from their activities", () => {
        const { customStatusText } = internals;
        assert.equal(customStatusText([{ type: 0, name: "a game" }, { type: 4, name: "Custom Status", state: " at the gym, back at 18:00 " }]), "at the gym, back at 18:00");
        assert.equal(customStatusText([{ type: 4, emoji: { name: "🏋️" } }]), "");
        assert.equal(customStatusText(null), "");
    });

    it("marks the owner's own messages as self and takes guild/channel from the action when needed", () => {
        const a = action({ author: { id: SELF.id, username: "owner" }, channel_id: undefined }, { channelId: "222", guildId: "9" });
        const frame = messageFrame(a, SELF.id);
        assert.equal(frame.self, true);
        assert.equal(frame.channel, "222");
        assert.equal(frame.guild, "9");
        assert.equal(messageFrame(action({}), SELF.id).guild, null);
    });

    it("skips optimistic echoes, authorless, webhook, system, and ephemeral messages", () => {
        assert.equal(messageFrame(action({}, { optimistic: true }), SELF.id), null);
        assert.equal(messageFrame(action({ author: null }), SELF.id), null);
        assert.equal(messageFrame(action({ webhook_id: "77" }), SELF.id), null);
        assert.equal(messageFrame(action({ type: 7 }), SELF.id), null); // member join
        assert.equal(messageFrame(action({ flags: 64 }), SELF.id), null);
        assert.equal(messageFrame({ type: "MESSAGE_CREATE" }, SELF.id), null);
        assert.notEqual(messageFrame(action({ type: 19, flags: 4 }), SELF.id), null); // reply, embeds suppressed
    });
});

describe("isWatched: the client-side allow-list", () => {
    const watch = [{ user: "111", channel: "222" }, { user: "*", channel: "333" }, { user: "444", channel: "*" }];
    const frame = (user, channel, self = false) => ({ author: { id: user }, channel, self });

    it("matches exact pairs and wildcards on either side", () => {
        assert.ok(isWatched(watch, frame("111", "222")));
        assert.ok(isWatched(watch, frame("999", "333")));
        assert.ok(isWatched(watch, frame("444", "12345")));
        assert.ok(!isWatched(watch, frame("111", "999")));
        assert.ok(!isWatched(watch, frame("999", "222")));
        assert.ok(!isWatched([], frame("111", "222")));
    });

    it("forwards the owner's own messages in any channel some rule covers", () => {
        assert.ok(isWatched([{ user: "111", channel: "222" }], frame(SELF.id, "222", true)));
        assert.ok(!isWatched([{ user: "111", channel: "222" }], frame(SELF.id, "999", true)));
        assert.ok(isWatched([{ user: "111", channel: "*" }], frame(SELF.id, "999", true)));
    });

    it("keeps only well-formed rules from the server", () => {
        assert.deepEqual(watchList([{ user: "1", channel: "2" }, { user: 1, channel: "2" }, null, "x"]).length, 1);
        assert.deepEqual(watchList(undefined), []);
    });
});

describe("backoffDelay", () => {
    it("starts about 1 s, doubles, caps at 30 s, with jitter in [half, full]", () => {
        const defaults = { baseMs: 1000, capMs: 30000 };
        assert.equal(backoffDelay(0, defaults, () => 1), 1000);
        assert.equal(backoffDelay(0, defaults, () => 0), 500);
        assert.equal(backoffDelay(3, defaults, () => 1), 8000);
        assert.equal(backoffDelay(10, defaults, () => 1), 30000);
        assert.equal(backoffDelay(1000, defaults, () => 0), 15000);
        for (let attempt = 0; attempt < 12; attempt++) {
            const delay = backoffDelay(attempt, defaults);
            assert.ok(delay >= 500 && delay <= 30000, `attempt ${attempt}: ${delay}`);
        }
    });

    it("defaults to 1 s -> 30 s when the plugin is built without options", () => {
        const { Plugin } = setup();
        assert.deepEqual({ ...new Plugin(META).backoff }, { baseMs: 1000, capMs: 30000 });
    });
});

describe("Outbox: the unacknowledged buffer", () => {
    const frame = (id) => ({ id: String(id) });

    it("keeps order, forgets acknowledged frames and ignores duplicate ids", () => {
        const outbox = new Outbox();
        for (const id of [1, 2, 3, 2]) outbox.add(frame(id));
        outbox.ack("2");
        assert.deepEqual(outbox.pending().map((f) => f.id), ["1", "3"]);
    });

    it("holds at most 200 frames, dropping the oldest", () => {
        const outbox = new Outbox();
        let dropped = 0;
        for (let id = 0; id < 205; id++) dropped += outbox.add(frame(id));
        assert.equal(dropped, 5);
        assert.equal(outbox.size, 200);
        assert.equal(outbox.pending()[0].id, "5");
    });

    it("drops frames older than an hour", () => {
        let now = 0;
        const outbox = new Outbox({ now: () => now });
        outbox.add(frame(1));
        now = 30 * 60 * 1000;
        outbox.add(frame(2));
        now = 61 * 60 * 1000;
        assert.deepEqual(outbox.pending().map((f) => f.id), ["2"]);
    });
});

describe("exactly once: a repeated send is answered without posting again", () => {
    /** A plugin "connected" through a fake open socket, recording the frames it sends. */
    function connectedPlugin(options) {
        const context = setup({ options });
        const frames = [];
        context.plugin.socket = { readyState: 1, send: (data) => frames.push(JSON.parse(data)) };
        context.plugin.welcomed = true;
        const deliver = (frame) => context.plugin.onFrame(context.plugin.socket, JSON.stringify({ type: "send", channel: "222", content: "hi", reply_to: null, ...frame }));
        const answers = (nonce) => frames.filter((frame) => frame.type === "sent" && frame.nonce === nonce);
        return { ...context, frames, deliver, answers };
    }

    it("answers a repeat of a posted nonce with sent ok, posting once", async () => {
        const { discord, deliver, answers } = connectedPlugin();
        deliver({ nonce: "n1" });
        await waitFor(() => answers("n1").length === 1, { what: "the first answer" });
        deliver({ nonce: "n1" });
        await waitFor(() => answers("n1").length === 2, { what: "the repeat's answer" });
        assert.deepEqual(answers("n1").map((answer) => answer.ok), [true, true]);
        assert.equal(discord.sent.length, 1);
        deliver({ nonce: "n2" }); // another nonce is another message
        await waitFor(() => answers("n2").length === 1, { what: "n2's answer" });
        assert.equal(discord.sent.length, 2);
    });

    it("a repeat that arrives while the post is in flight waits for it", async () => {
        const { discord, deliver, answers } = connectedPlugin();
        discord.sendDelayMs = 100;
        deliver({ nonce: "n1" });
        deliver({ nonce: "n1" });
        await waitFor(() => answers("n1").length === 2, { what: "two answers" });
        assert.deepEqual(answers("n1").map((answer) => answer.ok), [true, true]);
        assert.equal(discord.sent.length, 1);
    });

    it("a failed post is tried again by a repeat", async () => {
        const { discord, deliver, answers } = connectedPlugin();
        discord.failNextSend = new Error("Missing Permissions");
        deliver({ nonce: "n1" });
        await waitFor(() => answers("n1").length === 1, { what: "the failure" });
        assert.equal(answers("n1")[0].ok, false);
        deliver({ nonce: "n1" });
        await waitFor(() => answers("n1").length === 2, { what: "the retry's answer" });
        assert.equal(answers("n1")[1].ok, true);
        assert.equal(discord.sent.length, 2);
    });

    it("remembers at most `limit` nonces, for at most `maxAgeMs`", async () => {
        let now = 0;
        const { discord, deliver, answers } = connectedPlugin({ postedNonces: { limit: 2, maxAgeMs: 1000, now: () => now } });
        for (const nonce of ["a", "b", "c"]) deliver({ nonce });
        await waitFor(() => ["a", "b", "c"].every((nonce) => answers(nonce).length === 1), { what: "three answers" });
        deliver({ nonce: "c" }); // remembered
        deliver({ nonce: "a" }); // the oldest, dropped for the limit: posted again
        await waitFor(() => answers("a").length === 2 && answers("c").length === 2, { what: "the repeats" });
        assert.equal(discord.sent.length, 4);
        now = 1001;
        deliver({ nonce: "c" }); // too old now: posted again
        await waitFor(() => answers("c").length === 3, { what: "the late repeat" });
        assert.equal(discord.sent.length, 5);
    });

    it("remembers the posted nonces over a reload (BdApi.Data), not the failed ones, not for ever", async () => {
        let now = 5000;
        const first = connectedPlugin({ postedNonces: { now: () => now } });
        first.discord.failNextSend = new Error("Missing Permissions");
        first.deliver({ nonce: "failed" });
        first.deliver({ nonce: "posted" });
        await waitFor(() => first.answers("failed").length === 1 && first.answers("posted").length === 1, { what: "two answers" });
        assert.deepEqual(first.fake.data.get(META.name, "postedNonces"), [["posted", 5000]]);

        // Discord reloads: a new plugin instance, the same saved data, and the server asks again.
        const reloaded = new first.Plugin(META, { postedNonces: { now: () => now } });
        const frames = [];
        reloaded.socket = { readyState: 1, send: (data) => frames.push(JSON.parse(data)) };
        reloaded.welcomed = true;
        const ask = (nonce) => reloaded.onFrame(reloaded.socket, JSON.stringify({ type: "send", nonce, channel: "222", content: "hi", reply_to: null }));
        const answered = (nonce) => frames.filter((frame) => frame.type === "sent" && frame.nonce === nonce);
        ask("posted");
        ask("failed");
        await waitFor(() => answered("posted").length === 1 && answered("failed").length === 1, { what: "the answers after the reload" });
        assert.deepEqual([answered("posted")[0].ok, answered("failed")[0].ok], [true, true]);
        // Before the reload: the failed attempt and the post; after it, only the failed one again.
        assert.deepEqual(first.discord.sent.map((call) => call.options.nonce), ["failed", "posted", "failed"]);

        now += 10 * 60 * 1000 + 1; // past REPLY_WITHIN_MINUTES: the server would not ask again
        const later = new first.Plugin(META, { postedNonces: { now: () => now } });
        assert.deepEqual(later.postedNonces.toSaved(), []);
    });

    it("defaults to 1,000 nonces for 10 minutes", () => {
        const { plugin } = setup();
        assert.equal(plugin.postedNonces.limit, 1000);
        assert.equal(plugin.postedNonces.maxAgeMs, 10 * 60 * 1000);
    });
});

describe("sendMessageArgs", () => {
    it("calls Discord's sendMessage like the client: no tts, no pings, reply reference when asked", () => {
        const [channel, message, wait, options] = sendMessageArgs({ nonce: "n1", channel: "222", content: "yo", reply_to: "77" }, "9");
        assert.equal(channel, "222");
        assert.deepEqual({ ...message }, { content: "yo", tts: false, invalidEmojis: [], validNonShortcutEmojis: [] });
        assert.equal(wait, undefined);
        assert.deepEqual(JSON.parse(JSON.stringify(options)), {
            allowedMentions: { parse: [], replied_user: false },
            nonce: "n1",
            messageReference: { channel_id: "222", message_id: "77", guild_id: "9" },
        });
        assert.equal(sendMessageArgs({ nonce: "n", channel: "1", content: "x", reply_to: null })[3].messageReference, undefined);
    });
});

describe("the Discord adapter against the fake webpack", () => {
    it("finds each module with byKeys filters, skipping the decoys", () => {
        const { discord, fake } = setup();
        const { DiscordInternals } = loadPlugin({ BdApi: fake.BdApi }).internals;
        assert.equal(DiscordInternals.dispatcher(), discord.dispatcher);
        assert.equal(DiscordInternals.currentUserId(), SELF.id);
        DiscordInternals.messageActions().sendMessage("1", { content: "x" }, undefined, {});
        assert.equal(discord.sent.length, 1);
        assert.equal(discord.decoySent.length, 0);
        assert.ok(DiscordInternals.startTyping("42"));
        assert.deepEqual(discord.typing, ["42"]);
        // Every module is looked up by its keys (BD 1.13's byKeys), or as a store by name.
        const byKeys = fake.lookups.filter((lookup) => lookup.filter !== null).map((lookup) => lookup.filter.props.join(","));
        assert.deepEqual(byKeys, ["dispatch,subscribe,register", "sendMessage,editMessage", "startTyping,stopTyping"]);
        assert.equal(fake.lookups.length, byKeys.length + 1); // + getStore("UserStore")
        // Found modules are cached: using them again looks nothing up.
        DiscordInternals.dispatcher();
        DiscordInternals.messageActions();
        assert.equal(fake.lookups.length, byKeys.length + 1);
    });

    it("falls back to the local typing action when the typing module is missing", () => {
        const { discord, fake } = setup({ missing: ["typing"] });
        const { DiscordInternals } = loadPlugin({ BdApi: fake.BdApi }).internals;
        assert.ok(DiscordInternals.startTyping("42"));
        assert.deepEqual(discord.dispatcher.dispatched.at(-1), { type: "TYPING_START_LOCAL", channelId: "42" });
    });

    it("finds the dispatcher through UserStore._dispatcher when the direct lookup fails", () => {
        const { discord, fake } = setup({ missing: ["dispatcher"] });
        const { DiscordInternals } = loadPlugin({ BdApi: fake.BdApi }).internals;
        assert.equal(DiscordInternals.dispatcher(), discord.dispatcher);
    });

    for (const [missing, expected, afterwards] of [
        [["messageActions"], /^DiscordAutoReply: Discord's message-sending module was not found; in-client sending is off$/, "still forwards"],
        [["dispatcher", "userStore"], /dispatcher was not found/, "hears nothing"],
        [["userStore"], /UserStore was not found/, "forwards nothing, says why once"],
    ]) {
        it(`a missing ${missing.join(" and ")} module gives a toast, not an exception; the plugin ${afterwards}`, async () => {
            const port = await freePort();
            const context = setup({ missing, settings: { host: "127.0.0.1", port, secret: "x", enabled: true } });
            assert.doesNotThrow(() => started(context));
            assert.ok(context.fake.toasts.some((toast) => expected.test(toast.content)), JSON.stringify(context.fake.toasts));
            const { plugin, discord, fake } = context;
            discord.receive({ content: "one" });
            discord.receive({ content: "two" });
            const warnings = fake.logs.filter((log) => log.level === "warn").map((log) => log.text);
            if (afterwards === "still forwards") {
                // Sending is off, but watched messages are still buffered for the server.
                assert.deepEqual(plugin.outbox.pending().map((frame) => frame.content), ["one", "two"]);
                assert.deepEqual(warnings, []);
            } else if (afterwards === "hears nothing") {
                assert.equal(discord.dispatcher.listenerCount("MESSAGE_CREATE"), 0);
                assert.equal(plugin.outbox.size, 0);
            } else {
                // Without the owner's id, own messages cannot be told apart: nothing leaves.
                assert.equal(discord.dispatcher.listenerCount("MESSAGE_CREATE"), 1);
                assert.equal(plugin.outbox.size, 0);
                assert.deepEqual(warnings.filter((text) => /your user id is unknown/.test(text)).length, 1);
                assert.ok(!warnings.some((text) => /could not handle/.test(text)), "no exception caught");
            }
        });
    }
});

describe("lifecycle without a server", () => {
    it("reconnects with backoff, one socket at a time, without log or toast spam", async () => {
        const port = await freePort(); // nothing listens here: connections are refused
        const context = started(setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: true }, backoff: { baseMs: 10, capMs: 40 } }));
        await waitFor(() => context.spy.sockets.length >= 8, { what: "8 connection attempts" });
        assert.equal(context.plugin.status, "reconnecting");
        const open = context.spy.sockets.filter((socket) => socket.readyState < 2);
        assert.ok(open.length <= 1, `${open.length} sockets open at once`);
        const statusLogs = context.fake.logs.filter((log) => /connecting|reconnecting/.test(log.text));
        assert.deepEqual(statusLogs.map((log) => log.text.split(" ")[0]), ["connecting", "reconnecting"]);
        assert.equal(context.fake.toasts.filter((toast) => /not reachable/.test(toast.content)).length, 1);
        assert.equal(context.fake.toasts.length, 1);
    });

    it("gives up on a peer that accepts the connection but never welcomes, and retries", async () => {
        const peers = [];
        const silent = net.createServer((socket) => peers.push(socket)); // never answers the upgrade
        await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
        const settings = { host: "127.0.0.1", port: silent.address().port, secret: "x", enabled: true };
        const context = setup({ settings, options: { welcomeTimeoutMs: 100 }, backoff: { baseMs: 10, capMs: 20 } });
        context.plugin.start();
        try {
            await waitFor(() => context.spy.sockets.length >= 3, { what: "retries after silent peers" });
            assert.equal(context.plugin.status, "reconnecting");
            assert.equal(context.fake.logs.filter((log) => /no welcome/.test(log.text)).length, 1);
        } finally {
            context.plugin.stop();
            for (const socket of peers) socket.destroy();
            await new Promise((resolve) => silent.close(resolve));
        }
    });

    it("uses the watch list saved at the last connection until the first welcome", async () => {
        const port = await freePort(); // nothing listens: no welcome will come
        const context = setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: true } });
        context.fake.data.set(META.name, "watch", [{ user: "111", channel: "222" }, { user: "*", channel: "333" }]);
        started(context);
        const { discord, plugin } = context;
        discord.receive({ channel_id: "222", author: { id: "111" }, content: "watched pair" });
        discord.receive({ channel_id: "333", author: { id: "700" }, content: "anyone in 333" });
        discord.receive({ channel_id: "222", author: { id: "555" }, content: "SECRET other user" });
        discord.receive({ channel_id: "999", author: { id: "111" }, content: "SECRET other channel" });
        discord.receive({ channel_id: "222", author: { ...SELF }, content: "my own, in a watched channel" });
        discord.receive({ channel_id: "999", author: { ...SELF }, content: "SECRET my own elsewhere" });
        assert.deepEqual(plugin.outbox.pending().map((frame) => frame.content), ["watched pair", "anyone in 333", "my own, in a watched channel"]);
        assert.ok(!plugin.welcomed);
        assert.match(plugin.statusLine(), /2 watched pair\(s\)/);
    });

    it("buffers watched candidates while no server was ever reached", async () => {
        const port = await freePort();
        const context = started(setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: true } }));
        context.discord.receive({ content: "one" });
        context.discord.receive({ content: "two", channel_id: "999" });
        context.discord.dispatcher.dispatch({ type: "MESSAGE_CREATE", channelId: "222", optimistic: true, message: { id: "5", channel_id: "222", author: { id: "111" }, content: "local echo", type: 0 } });
        assert.equal(context.plugin.outbox.size, 2); // the watch list is unknown yet: filtered on welcome
        assert.equal(context.spy.messages().length, 0);
    });

    it("stop() unsubscribes the same listener, closes the socket and stops retrying", async () => {
        const port = await freePort();
        const context = setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: true }, backoff: RETRY_BACKOFF });
        context.plugin.start();
        assert.equal(context.discord.dispatcher.listenerCount("MESSAGE_CREATE"), 1);
        await waitFor(() => context.spy.sockets.length >= 2, { what: "a retry" });
        context.plugin.stop();
        assert.equal(context.discord.dispatcher.listenerCount("MESSAGE_CREATE"), 0);
        const count = context.spy.sockets.length;
        await afterControlRetries(port);
        assert.equal(context.spy.sockets.length, count, "no reconnects after stop()");
        assert.ok(context.spy.sockets.every((socket) => socket.readyState >= 2));
        assert.equal(context.plugin.status, "disabled");
        context.discord.receive({ content: "after stop" });
        assert.equal(context.plugin.outbox.size, 0);
    });

    it("does not connect when disabled in the settings", async () => {
        const port = await freePort();
        const context = started(setup({ settings: { host: "127.0.0.1", port, secret: "x", enabled: false }, backoff: RETRY_BACKOFF }));
        assert.equal(context.spy.sockets.length, 0);
        await afterControlRetries(port); // an enabled plugin has connected and retried meanwhile
        assert.equal(context.spy.sockets.length, 0);
        assert.equal(context.plugin.status, "disabled");
    });
});

describe("settings", () => {
    it("load defaults, then saved values, through BdApi.Data", () => {
        assert.deepEqual({ ...startupSettings(undefined, internals.DEFAULT_SETTINGS, undefined) }, { host: "127.0.0.1", port: 8765, secret: "", enabled: true, transport: "auto" });
        const context = started(setup({ settings: { host: "127.0.0.1", port: 8765, secret: "", enabled: false, transport: "http" } }));
        assert.deepEqual(context.fake.data.get(META.name, "settings"), { host: "127.0.0.1", port: 8765, secret: "", enabled: false, transport: "http" });
        assert.deepEqual({ ...normalizeSettings({ port: "9000", host: " h ", enabled: false }) }, { host: "h", port: 9000, secret: "", enabled: false, transport: "auto" });
        assert.equal(normalizeSettings({ port: 70000 }).port, 8765);
        assert.equal(normalizeSettings({ transport: "carrier pigeon" }).transport, "auto");
    });

    it("builds the server URL, bracketing IPv6 addresses", () => {
        assert.equal(serverUrl({ host: "127.0.0.1", port: 8765 }), "ws://127.0.0.1:8765");
        assert.equal(serverUrl({ host: "::1", port: 8765 }), "ws://[::1]:8765");
        assert.equal(serverUrl({ host: "[::1]", port: 1 }), "ws://[::1]:1");
        assert.equal(serverUrl({ host: "::1", port: 8765 }, "http"), "http://[::1]:8765");
    });

    it("a re-install's new defaults win over saved values; the person's own changes stay otherwise", () => {
        const factory = { host: "127.0.0.1", port: 8765, secret: "", enabled: true };
        const installed = { ...factory, port: 9000, secret: "first" };
        // First start after an install: the installed values beat stale saved ones.
        assert.deepEqual({ ...startupSettings({ secret: "typed", enabled: false }, installed, undefined) }, { ...installed, enabled: false, transport: "auto" });
        // A manual install (factory defaults): what the person typed is kept.
        assert.deepEqual({ ...startupSettings({ secret: "typed", transport: "http" }, factory, undefined) }, { ...factory, secret: "typed", transport: "http" });
        // Later starts with the same install: saved values win; a new install's changed keys win.
        assert.equal(startupSettings({ secret: "typed" }, installed, installed).secret, "typed");
        const reinstalled = { ...installed, secret: "second" };
        assert.deepEqual({ ...startupSettings({ ...installed, enabled: false }, reinstalled, installed) }, { ...reinstalled, enabled: false, transport: "auto" });
    });

    it("the plugin file as the installer renders it uses the new secret after a restart", () => {
        // Saved disabled so that nothing connects to port 8765 during the test.
        const context = setup({ settings: { host: "127.0.0.1", port: 8765, secret: "old", enabled: false } });
        context.fake.data.set(META.name, "installedDefaults", { host: "127.0.0.1", port: 8765, secret: "old", enabled: true });
        const rendered = source.replace(/^const DEFAULT_SETTINGS = .*$/m, 'const DEFAULT_SETTINGS = {"host": "127.0.0.1", "port": 8765, "secret": "new", "enabled": true}; // @install-defaults');
        const Plugin = loadPlugin({ BdApi: context.fake.BdApi, WebSocket: context.spy.WebSocket, document: context.document, source: rendered });
        const plugin = new Plugin(META);
        plugin.start();
        running.push(plugin);
        const { transport, ...rest } = plugin.settings; // the suite's transport, as saved
        assert.deepEqual(rest, { host: "127.0.0.1", port: 8765, secret: "new", enabled: false });
        assert.equal(transport, context.fake.data.get(META.name, "settings").transport);
        assert.equal(context.fake.data.get(META.name, "settings").secret, "new");
        assert.equal(context.spy.sockets.length, 0);
    });

    it("panel has host, port, secret, enable switch, transport and a status line; a change is saved and reconnects", async () => {
        const port = await freePort();
        const context = started(setup({ settings: { host: "127.0.0.1", port: 1, secret: "x", enabled: false, transport: "websocket" } }));
        const panel = context.plugin.getSettingsPanel();
        const input = (name) => panel.find((element) => element.name === name);
        assert.equal(input("host").value, "127.0.0.1");
        assert.equal(input("port").value, "1");
        assert.equal(input("secret").type, "password");
        assert.equal(input("enabled").checked, false);
        assert.equal(input("transport").value, "websocket");
        assert.deepEqual(input("transport").children.map((option) => option.value), ["auto", "websocket", "http"]);
        const status = panel.find((element) => element.className === "discord-auto-reply-status");
        assert.match(status.textContent, /disabled/);
        assert.match(status.textContent, /watch list not received yet/);

        input("port").value = String(port);
        input("port").dispatchEvent({ type: "change" });
        input("enabled").checked = true;
        input("enabled").dispatchEvent({ type: "change" });
        assert.deepEqual(context.fake.data.get(META.name, "settings"), { host: "127.0.0.1", port, secret: "x", enabled: true, transport: "websocket" });
        await waitFor(() => context.spy.sockets.length >= 1, { what: "a connection attempt" });
        assert.equal(context.spy.sockets[0].url, `ws://127.0.0.1:${port}/`);
        await waitFor(() => /reconnecting/.test(status.textContent), { what: "the status line to update" });
    });
});
