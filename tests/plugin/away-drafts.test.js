"use strict";
// Away mode and drafts in the plugin: the owner's status read from Discord's stores and reported,
// the settings switch, the draft notice (Send, Edit, Discard) and the summary on return; first
// against the fake BdApi alone, then with the real relay server (REPLY_WHEN "away").

const assert = require("node:assert/strict");
const fs = require("node:fs");
const { before, after, afterEach, describe, it } = require("node:test");

const { createFakeBdApi, createFakeDiscord } = require("./fake-bdapi");
const { loadPlugin, setup, waitFor, sleep, freePort, startFakeOpenAI, RelayServer } = require("./harness");

const { internals } = loadPlugin({ BdApi: createFakeBdApi(createFakeDiscord()).BdApi });
const { channelPath, draftNoticeText } = internals;

const RULES = [
    ["111", "222"], // a DM (the fake ChannelStore knows 222 as one), replies are sent
    ["444", "445", { mode: "draft" }], // replies are drafts
];

const running = [];
afterEach(() => {
    while (running.length) running.pop().stop();
});

describe("the owner's status, without a server", () => {
    it("is read from SelfPresenceStore, the store Discord reads its own user's status from", () => {
        const { discord, fake } = setup();
        const { DiscordInternals } = loadPlugin({ BdApi: fake.BdApi }).internals;
        assert.equal(DiscordInternals.ownStatus(), "online");
        discord.status = "idle";
        assert.equal(DiscordInternals.ownStatus(), "idle");
        assert.equal(DiscordInternals.selfPresenceStore().getName(), "SelfPresenceStore");
        assert.deepEqual(DiscordInternals.presenceStores().map((store) => store.getName()), ["SelfPresenceStore", "PresenceStore"]);
    });

    it("falls back to PresenceStore.getStatus(own id), and to nothing when neither store is there", () => {
        const { discord, fake } = setup({ missing: ["selfPresenceStore"] });
        const { DiscordInternals } = loadPlugin({ BdApi: fake.BdApi }).internals;
        discord.status = "dnd";
        assert.equal(DiscordInternals.ownStatus(), "dnd");

        const none = setup({ missing: ["selfPresenceStore", "presenceStore"], settings: { host: "127.0.0.1", port: 1, secret: "x", enabled: false } });
        assert.equal(loadPlugin({ BdApi: none.fake.BdApi }).internals.DiscordInternals.ownStatus(), null);
        none.plugin.start();
        running.push(none.plugin);
        assert.ok(none.fake.toasts.some((toast) => /presence stores were not found/.test(toast.content)), JSON.stringify(none.fake.toasts));
    });

    it("subscribes to the stores' changes on start and unsubscribes on stop", () => {
        const { discord, plugin } = setup({ settings: { host: "127.0.0.1", port: 1, secret: "x", enabled: false } });
        plugin.start();
        assert.equal(discord.presenceListeners(), 2);
        plugin.stop();
        assert.equal(discord.presenceListeners(), 0);
    });

    it("names chats and people from Discord's stores and builds their paths", () => {
        const { fake } = setup();
        const { DiscordInternals } = loadPlugin({ BdApi: fake.BdApi }).internals;
        assert.equal(DiscordInternals.chatLabel("222"), "in your DM");
        assert.equal(DiscordInternals.chatLabel("445"), "in #channel-445");
        assert.equal(DiscordInternals.userName("111"), "Friend");
        assert.equal(DiscordInternals.userName("404"), null);
        assert.equal(channelPath("222", null), "/channels/@me/222");
        assert.equal(channelPath("445", "900"), "/channels/900/445");
        assert.equal(draftNoticeText({ content: "see you" }, "Friend", "in your DM"), "Draft reply to Friend in your DM: “see you”");
    });
});

let llm;
let server;

before(async () => {
    llm = await startFakeOpenAI();
    const config = { REPLY_WHEN: "away", COALESCE_SECONDS: 0.0, TAKEOVER_MINUTES: 0.0 };
    server = await new RelayServer({ port: await freePort(), llm, rules: RULES, config }).start();
});

after(async () => {
    while (running.length) running.pop().stop();
    await server?.dispose();
    await llm?.stop();
});

async function connected(overrides = {}) {
    const context = setup({ settings: server.settings, ...overrides });
    context.plugin.start();
    running.push(context.plugin);
    await waitFor(() => context.plugin.status === "connected", { what: `a welcome; server log:\n${server.output}` });
    return context;
}

const presenceFrames = (spy) => spy.sent.filter((frame) => frame.type === "presence").map((frame) => frame.status);
const awayStatus = (spy) => spy.received.filter((frame) => frame.type === "away_status").at(-1);
const sentIn = (discord, channel) => discord.sent.filter((call) => call.channelId === channel).map((call) => call.message.content);

describe("away mode with the relay server", () => {
    it("reports the owner's custom status text and name with the status, and again when it changes", async () => {
        const { discord, spy } = await connected();
        const reports = () => spy.sent.filter((frame) => frame.type === "presence");
        await waitFor(() => reports().length === 1, { what: "the presence at welcome" });
        assert.deepEqual({ ...reports()[0], socket: undefined }, { socket: undefined, type: "presence", status: "online", custom_status: "", name: "owner" });
        discord.setCustomStatus("at the gym, back at 18:00");
        await waitFor(() => reports().length === 2, { what: "the new custom status" });
        assert.equal(reports()[1].custom_status, "at the gym, back at 18:00");
        assert.equal(reports()[1].status, "online");
        await sleep(100);
        assert.ok(!spy.received.some((frame) => frame.type === "error"), "the server took the frames");
    });

    it("reports the status at the welcome and on each change; the server replies only while away", async () => {
        const { discord, spy, plugin, fake } = await connected();
        await waitFor(() => presenceFrames(spy).length === 1, { what: "the presence at welcome" });
        assert.deepEqual(presenceFrames(spy), ["online"]);
        await waitFor(() => awayStatus(spy)?.presence === "online", { what: "the server's away status" });
        assert.equal(awayStatus(spy).replying, false);

        const early = discord.receive({ channel_id: "222", author: { id: "111", username: "friend" }, content: "you there?" });
        await waitFor(() => spy.received.some((frame) => frame.type === "ack" && frame.id === early.id), { what: "the ack" });
        await waitFor(() => server.output.includes(`message ${early.id} remembered, not answered`), { what: "the server's decision" });
        assert.deepEqual(sentIn(discord, "222"), [], "online: no reply");

        discord.setStatus("idle"); // Discord sets idle by itself after a while without input
        discord.setStatus("idle"); // a change elsewhere in the stores: no second report
        await waitFor(() => awayStatus(spy)?.presence === "idle", { what: "idle to reach the server" });
        assert.deepEqual(presenceFrames(spy), ["online", "idle"]);
        assert.match(plugin.statusLine(), /replying for you now/);
        discord.receive({ channel_id: "222", author: { id: "111", username: "friend" }, content: "hello?" });
        await waitFor(() => sentIn(discord, "222").length === 1, { what: "the reply while idle" });
        assert.equal(sentIn(discord, "222")[0], "[auto-reply] echo: hello? [turns=2]");
        await waitFor(() => spy.sent.some((frame) => frame.type === "sent"), { what: "the `sent` answer" });

        // Back: one summary, in a modal, with a link that opens the chat.
        discord.setStatus("online");
        const modal = await waitFor(() => fake.modals.find((m) => m.title === "While you were away"), { what: "the summary" });
        const texts = modal.content.filter((part) => typeof part === "string");
        assert.deepEqual(texts, ["Friend in your DM: 1 message(s) answered", "• echo: hello? [turns=2]"]);
        const link = modal.content.find((part) => typeof part === "object");
        assert.equal(link.type, "a");
        assert.equal(link.props.href, "https://discord.com/channels/@me/222");
        assert.equal(link.props.children, "Open the chat");
        let prevented = false;
        link.props.onClick({ preventDefault: () => (prevented = true) });
        assert.ok(prevented);
        assert.deepEqual(discord.navigations, ["/channels/@me/222"]);
        assert.equal(modal.options.cancelText, null);
    });

    it("the settings panel's away switch sets the server's, and shows it", async () => {
        const { spy, plugin } = await connected();
        await waitFor(() => awayStatus(spy), { what: "the away status" });
        const panel = plugin.getSettingsPanel();
        const select = panel.find((element) => element.name === "away");
        assert.deepEqual(select.children.map((option) => option.value), ["auto", "on", "off"]);
        assert.equal(select.value, "auto");
        const status = panel.find((element) => element.className === "discord-auto-reply-status");
        assert.match(status.textContent, /not replying now/);

        select.value = "on";
        select.dispatchEvent({ type: "change" });
        await waitFor(() => awayStatus(spy)?.switch === "on", { what: "the switch to be on" });
        assert.deepEqual(spy.sent.filter((frame) => frame.type === "away").map(({ socket, ...frame }) => frame), [{ type: "away", mode: "on" }]);
        assert.match(status.textContent, /replying for you now/);

        select.value = "auto";
        select.dispatchEvent({ type: "change" });
        await waitFor(() => awayStatus(spy)?.switch === "auto", { what: "the switch back to auto" });
        assert.equal(select.value, "auto");
    });

    it("the settings panel's away note sets the server's; every plugin's away_status carries it", async () => {
        const first = await connected();
        const second = await connected();
        await waitFor(() => awayStatus(first.spy) && awayStatus(second.spy), { what: "the away status" });
        assert.equal(typeof awayStatus(first.spy).note, "string", "the greeting carries the note");
        const panel = first.plugin.getSettingsPanel();
        const input = panel.find((element) => element.name === "away_note");
        assert.equal(input.value, "");

        input.value = "  at the gym, back at 18:00 ";
        input.dispatchEvent({ type: "change" });
        await waitFor(() => awayStatus(second.spy)?.note === "at the gym, back at 18:00", { what: "the note pushed to the other plugin" });
        assert.deepEqual(first.spy.sent.filter((frame) => frame.type === "away").map(({ socket, ...frame }) => frame), [{ type: "away", note: "at the gym, back at 18:00" }]);
        assert.equal(awayStatus(second.spy).note_source, "set with away note");
        await waitFor(() => awayStatus(first.spy)?.note === "at the gym, back at 18:00", { what: "the note back in the first" });
        assert.equal(input.value, "at the gym, back at 18:00");

        // A custom status applies once the note is cleared, and shows as the field's placeholder.
        first.discord.setCustomStatus("in a meeting");
        input.value = "";
        input.dispatchEvent({ type: "change" });
        await waitFor(() => awayStatus(first.spy)?.note === "in a meeting", { what: "the custom status as the note" });
        assert.equal(input.value, "");
        assert.equal(input.placeholder, "in a meeting (your Discord custom status)");
    });
});

describe("drafts with the relay server", () => {
    it("shows each draft in a notice naming the person and the chat; Edit then Send posts the edit", async () => {
        const context = await connected();
        const { discord, fake, spy } = context;
        discord.setStatus("dnd");
        await waitFor(() => awayStatus(spy)?.presence === "dnd", { what: "dnd" });
        discord.receive({ channel_id: "445", author: { id: "444", username: "pal" }, content: "lunch?" });
        const notice = await waitFor(() => fake.notices.find((n) => n.content.startsWith("Draft reply to pal")), { what: "the draft notice" });
        assert.equal(notice.content, "Draft reply to pal in #channel-445: “echo: lunch? [turns=1]”");
        assert.deepEqual(notice.buttons.map((button) => button.label), ["Send", "Edit", "Discard"]);
        // The server answers a pair's messages in turn: once the next message's draft is shown, it
        // has finished with this one, sending nothing and showing no typing indicator.
        discord.receive({ channel_id: "445", author: { id: "444", username: "pal" }, content: "still there?" });
        const next = await waitFor(() => fake.notices.find((n) => /“echo: still there\?/.test(n.content)), { what: "the next draft" });
        assert.deepEqual(sentIn(discord, "445"), [], "a draft is not sent");
        assert.ok(!discord.typing.includes("445"), "no typing indicator for a draft");
        next.click("Discard");
        await waitFor(() => next.closed, { what: "the next draft to close" });

        notice.click("Edit");
        const editor = fake.modals.at(-1);
        assert.equal(editor.title, "Edit the reply to pal");
        assert.equal(editor.content[0], "in #channel-445, answering “lunch?”:");
        const textarea = editor.content[1];
        assert.equal(textarea.type, "textarea");
        assert.equal(textarea.props.defaultValue, "echo: lunch? [turns=1]");
        textarea.props.onChange({ target: { value: "Sure, 1 pm?" } });
        editor.confirm();
        await waitFor(() => sentIn(discord, "445").length === 1, { what: "the edited reply" });
        assert.equal(sentIn(discord, "445")[0], "[auto-reply] Sure, 1 pm?");
        await waitFor(() => notice.closed, { what: "the notice to close" });
        await waitFor(() => fake.toasts.some((toast) => /reply sent/.test(toast.content)), { what: "a toast" });
        const actions = spy.sent.filter((frame) => frame.type === "draft_action").map(({ action, content }) => ({ action, content }));
        assert.deepEqual(actions, [{ action: "discard", content: null }, { action: "send", content: "Sure, 1 pm?" }]);
    });

    it("Discard drops a draft; Send posts it as written; a plugin started later is shown what is pending", async () => {
        const { discord, fake, spy } = await connected();
        discord.setStatus("idle");
        await waitFor(() => awayStatus(spy)?.presence === "idle", { what: "idle" });
        discord.receive({ channel_id: "445", author: { id: "444", username: "pal" }, content: "one" });
        const first = await waitFor(() => fake.notices.find((n) => /“echo: one/.test(n.content)), { what: "the first draft" });
        first.click("Discard");
        await waitFor(() => first.closed, { what: "the discarded draft to close" });

        discord.receive({ channel_id: "445", author: { id: "444", username: "pal" }, content: "two" });
        const second = await waitFor(() => fake.notices.find((n) => /“echo: two/.test(n.content)), { what: "the second draft" });

        // Discord restarts: a new plugin instance is shown the draft still pending, once.
        const later = await connected();
        const again = await waitFor(() => later.fake.notices.find((n) => /“echo: two/.test(n.content)), { what: "the pending draft again" });
        assert.equal(later.fake.notices.filter((n) => n.content.startsWith("Draft reply")).length, 1);
        again.click("Send");
        await waitFor(() => later.discord.sent.length === 1, { what: "the draft sent through the newest plugin" });
        assert.match(later.discord.sent[0].message.content, /^\[auto-reply\] echo: two \[turns=\d+\]$/);
        await waitFor(() => again.closed && second.closed, { what: "both notices of the sent draft to close" });
        assert.deepEqual(sentIn(discord, "445"), [], "only the newest plugin posts");
        discord.setStatus("online");
        later.discord.setStatus("online");
    });
});

process.on("exit", (code) => {
    if (code !== 0 && server) fs.writeSync(2, `\n--- relay server log ---\n${server.output}\n`);
});
