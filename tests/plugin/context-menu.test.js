"use strict";
// Chats chosen from inside Discord: the plugin's "Auto-reply" items in Discord's context menus
// (BdApi.ContextMenu), the settings panel's "Watched chats" and the indicator pill. First against
// the fake BdApi with the server's frames played by the test, then with the real relay server.

const assert = require("node:assert/strict");
const { before, after, afterEach, describe, it } = require("node:test");

const { createFakeBdApi, createFakeDiscord, SELF } = require("./fake-bdapi");
const { loadPlugin, setup, waitFor, freePort, startFakeOpenAI, RelayServer, echoedText } = require("./harness");

const { internals } = loadPlugin({ BdApi: createFakeBdApi(createFakeDiscord()).BdApi });
const { menuTargets, autoReplyMenu, appendMenuItem, chatRules, indicatorText, isWatched, rulesState } = internals;

const NAV_IDS = ["user-context", "channel-context", "gdm-context"];
const OFF = { host: "127.0.0.1", port: 1, secret: "x", enabled: false };

/** People and chats of these tests, added to what the fake client knows. */
function addChats(discord) {
    discord.users.set("150", { id: "150", username: "sam_42", globalName: "Sam", bot: false });
    discord.users.set("151", { id: "151", username: "alex", globalName: null, bot: false });
    discord.channels.set("260", { id: "260", type: 1, name: "", guild_id: null, recipients: ["150"] });
    discord.channels.set("270", { id: "270", type: 0, name: "general", guild_id: "900" });
    discord.channels.set("271", { id: "271", type: 2, name: "Voice", guild_id: "900" });
    discord.channels.set("280", { id: "280", type: 3, name: "Friends", guild_id: null, recipients: ["150", "151"] });
}

const running = [];
afterEach(() => {
    while (running.length) running.pop().stop();
});

/**
 * A started plugin (not connecting) that counts as connected through a fake open socket: `frames`
 * records what it sends, `deliver(frame)` plays a server frame.
 */
function fakeConnected({ connected = true } = {}) {
    const context = setup({ settings: OFF });
    addChats(context.discord);
    context.plugin.start();
    running.push(context.plugin);
    const frames = [];
    const deliver = (frame) => context.plugin.onFrame(context.plugin.socket, JSON.stringify(frame));
    if (connected) {
        context.plugin.socket = { readyState: 1, send: (data) => frames.push(JSON.parse(data)), close() {} };
        context.plugin.welcomed = true;
        context.plugin.status = "connected";
    }
    const open = (navId, chat, options) => context.fake.contextMenu.open(navId, context.discord.menuProps(navId, chat), options);
    return { ...context, frames, deliver, open };
}

const discordRule = (user, channel, fields = {}) => ({ user, channel, source: "discord", label: null, persona: null, mode: null, reply_when: null, last_reply: null, where: "Discord", ...fields });
const fileRule = (user, channel, fields = {}) => ({ user, channel, source: "file", label: null, persona: null, mode: null, reply_when: null, last_reply: null, where: "reply_config.py REPLY_TO[0]", ...fields });
const labels = (menu) => menu.find("Auto-reply").props.children.map((item) => item.props.label ?? `<${item.type}>`);

describe("menus without a server: what each context menu offers", () => {
    it("patches the three menus on start and unpatches them on stop", () => {
        const { fake, plugin } = setup({ settings: OFF });
        plugin.start();
        assert.deepEqual(NAV_IDS.map((navId) => fake.contextMenu.patchCount(navId)), [1, 1, 1]);
        plugin.stop();
        assert.deepEqual(NAV_IDS.map((navId) => fake.contextMenu.patchCount(navId)), [0, 0, 0]);
        assert.equal(fake.contextMenu.patches.size, 0);
    });

    it("a DM's user menu: here and in all our DMs; a server channel's: in #channel; the friends list: all our DMs", () => {
        const { open, fake } = fakeConnected();
        assert.deepEqual(labels(open("user-context", { user: "150", channel: "260" })).slice(0, 2), ["Auto-reply to Sam here", "Auto-reply to Sam in all our DMs"]);
        assert.deepEqual(labels(open("user-context", { user: "150", channel: "270" })).slice(0, 2), ["Auto-reply to Sam in #general", "Auto-reply to Sam in all our DMs"]);
        assert.deepEqual(labels(open("user-context", { user: "151" })).slice(0, 1), ["Auto-reply to alex in all our DMs"]);
        // A user right-clicked in a DM that is not theirs, or in a voice channel: all our DMs only.
        assert.deepEqual(labels(open("user-context", { user: "151", channel: "260" })).slice(0, 2), ["Auto-reply to alex in all our DMs", "<MenuSeparator>"]);
        assert.deepEqual(labels(open("gdm-context", { channel: "280" })).slice(0, 1), ["Auto-reply to everyone here"]);
        assert.deepEqual(labels(open("channel-context", { channel: "270" })).slice(0, 1), ["Auto-reply to everyone in #general"]);
        assert.deepEqual(fake.contextMenu.errors, []);
    });

    it("adds nothing to your own user menu, a voice channel's menu, or a menu without its object", () => {
        const { open, discord } = fakeConnected();
        discord.users.set(SELF.id, { ...SELF });
        for (const [navId, chat] of [["user-context", { user: SELF.id, channel: "260" }], ["channel-context", { channel: "271" }], ["gdm-context", {}], ["channel-context", {}]]) {
            assert.equal(open(navId, chat).find("Auto-reply"), null, `${navId} ${JSON.stringify(chat)}`);
        }
    });

    it("keeps Discord's own items, whether the tree's children are an array or one element", () => {
        const { open } = fakeConnected();
        for (const single of [false, true]) {
            const menu = open("user-context", { user: "150", channel: "260" }, { single });
            const top = menu.tree.props.children;
            assert.ok(Array.isArray(top));
            assert.equal(top.length, single ? 2 : 3);
            assert.ok(menu.find("Profile") && menu.find("Mention"));
            assert.equal(top.at(-1).props.id, "discord-auto-reply");
        }
    });

    it("says the server is not connected, disabled, with the same hooks as when connected", () => {
        const { open, plugin } = fakeConnected({ connected: false });
        const menu = open("user-context", { user: "150", channel: "260" });
        const item = menu.find(/^Auto-reply/);
        assert.equal(item.props.label, "Auto-reply (server not connected)");
        assert.equal(item.props.disabled, true);
        assert.equal(menu.click(/^Auto-reply \(server/), false);
        plugin.socket = { readyState: 1, send() {}, close() {} };
        plugin.welcomed = true;
        menu.render(); // connected while open: same number of toggles, so React's hooks still line up
        assert.equal(menu.find(/^Auto-reply/).props.label, "Auto-reply");
        assert.equal(menu.find(/^Auto-reply/).props.disabled, false);
    });

    it("a click sends rule_set with the whole state and a label; the rule_result is a toast", () => {
        const { open, frames, deliver, fake } = fakeConnected();
        const menu = open("user-context", { user: "150", channel: "260" });
        assert.equal(menu.find("Auto-reply to Sam here").props.checked, false);
        for (const label of ["Draft first", "Even while I'm here", "Stop auto-replying here", "Persona"]) assert.equal(menu.find(label).props.disabled, true, label);
        menu.click("Auto-reply to Sam here");
        assert.deepEqual(frames, [{ type: "rule_set", user: "150", channel: "260", persona: null, mode: null, reply_when: null, label: "Sam (DM)" }]);
        assert.equal(menu.find("Auto-reply to Sam here").props.checked, true); // BD's toggle flips at once
        deliver({ type: "rule_result", ok: true, text: "Auto-replying to Sam here (persona: default, replies sent).", rule: discordRule("150", "260") });
        assert.deepEqual(fake.toasts.at(-1), { content: "DiscordAutoReply: Auto-replying to Sam here (persona: default, replies sent).", type: "success" });
        deliver({ type: "rule_result", ok: false, text: "No Discord rule for this chat.", rule: null });
        assert.deepEqual(fake.toasts.at(-1), { content: "DiscordAutoReply: No Discord rule for this chat.", type: "error" });

        open("channel-context", { channel: "270" }).click("Auto-reply to everyone in #general");
        open("gdm-context", { channel: "280" }).click("Auto-reply to everyone here");
        open("user-context", { user: "150", channel: "270" }).click("Auto-reply to Sam in all our DMs");
        assert.deepEqual(frames.slice(1).map(({ user, channel, label }) => [user, channel, label]), [
            ["*", "270", "#general · My Server"],
            ["*", "280", "Friends (group DM)"],
            ["150", "@dms", "Sam (all DMs)"],
        ]);
    });

    it("with a Discord rule: the item checked, the persona, draft and always toggles change it, Stop removes it", () => {
        const { open, frames, deliver, fake } = fakeConnected();
        deliver({ type: "rules", rules: [discordRule("150", "260", { label: "Sam (DM)", persona: "formal" })], personas: ["friendly", "formal"] });
        const menu = open("user-context", { user: "150", channel: "260" });
        assert.equal(menu.find("Auto-reply to Sam here").props.checked, true);
        assert.equal(menu.find("Auto-reply to Sam in all our DMs").props.checked, false);
        const persona = menu.find("Persona");
        assert.equal(persona.props.disabled, false);
        assert.deepEqual(persona.props.children.map((item) => [item.type, item.props.label, item.props.checked]), [
            ["MenuRadioItem", "Default", false],
            ["MenuRadioItem", "friendly", false],
            ["MenuRadioItem", "formal", true],
        ]);
        const whole = { type: "rule_set", user: "150", channel: "260", persona: "formal", mode: null, reply_when: null, label: "Sam (DM)" };
        menu.click("friendly");
        menu.click("Draft first");
        menu.click("Even while I'm here");
        menu.click("Stop auto-replying here");
        assert.deepEqual(frames, [
            { ...whole, persona: "friendly" },
            { ...whole, mode: "draft" },
            { ...whole, reply_when: "always" },
            { type: "rule_remove", user: "150", channel: "260" },
        ]);

        // The server's new state comes back: the menu re-renders with it (same hooks), toggles turn off.
        frames.length = 0;
        deliver({ type: "rules", rules: [discordRule("150", "260", { label: "Sam (DM)", mode: "draft", reply_when: "always" })], personas: ["friendly", "formal"] });
        menu.render();
        assert.equal(menu.find("Default").props.checked, true);
        const fresh = open("user-context", { user: "150", channel: "260" });
        assert.equal(fresh.find("Draft first").props.checked, true);
        assert.equal(fresh.find("Even while I'm here").props.checked, true);
        fresh.click("Draft first");
        fresh.click("Auto-reply to Sam here"); // unchecking the chat's item stops it too
        assert.deepEqual(frames, [
            { type: "rule_set", user: "150", channel: "260", persona: null, mode: "send", reply_when: "always", label: "Sam (DM)" },
            { type: "rule_remove", user: "150", channel: "260" },
        ]);
        assert.deepEqual(fake.contextMenu.errors, []);

        // With MODE "draft" in config.json, a rule without a mode of its own drafts: the toggle says so.
        deliver({ type: "rules", rules: [discordRule("150", "260", { label: "Sam (DM)" })], personas: [], defaults: { mode: "draft", reply_when: "away" } });
        const drafting = open("user-context", { user: "150", channel: "260" });
        assert.equal(drafting.find("Draft first").props.checked, true);
        frames.length = 0;
        drafting.click("Draft first");
        assert.equal(frames[0].mode, "send");
    });

    it("a persona PERSONAS lost shows checked but not choosable, and is sent as the default; a null reply_when follows REPLY_WHEN", () => {
        const { open, frames, deliver } = fakeConnected();
        deliver({ type: "away_status", switch: "auto", presence: "online", away: false, reply_when: "always", replying: true, always_rules: 0 });
        deliver({ type: "rules", rules: [discordRule("150", "@dms", { persona: "pirate", label: "Sam (all DMs)" })], personas: ["friendly"] });
        const menu = open("user-context", { user: "150" });
        const lost = menu.find("pirate (not in PERSONAS)");
        assert.deepEqual([lost.props.checked, lost.props.disabled], [true, true]);
        assert.equal(menu.find("Even while I'm here").props.checked, true);
        menu.click("Even while I'm here");
        assert.deepEqual(frames, [{ type: "rule_set", user: "150", channel: "@dms", persona: null, mode: null, reply_when: "away", label: "Sam (all DMs)" }]);
    });

    it("a file rule shows its state disabled with where it is set; Stop still asks the server", () => {
        const { open, frames, deliver } = fakeConnected();
        deliver({ type: "rules", rules: [fileRule("*", "270", { persona: "custom", mode: "draft", where: "reply_config.py REPLY_TO[2]" })], personas: ["friendly"] });
        const menu = open("channel-context", { channel: "270" });
        const item = menu.find("Auto-reply to everyone in #general");
        assert.deepEqual([item.props.checked, item.props.disabled], [true, true]);
        assert.equal(menu.find("Set in reply_config.py REPLY_TO[2]").props.disabled, true);
        for (const label of ["Persona", "Draft first", "Even while I'm here"]) assert.equal(menu.find(label).props.disabled, true, label);
        assert.equal(menu.find("Draft first").props.checked, true);
        assert.equal(menu.find("Custom prompt").props.checked, true);
        assert.equal(menu.click("Auto-reply to everyone in #general"), false);
        assert.equal(menu.click("Draft first"), false);
        assert.equal(menu.click("Stop auto-replying here"), true);
        assert.deepEqual(frames, [{ type: "rule_remove", user: "*", channel: "270" }]);
    });

    it("says so in a toast when a click finds the server gone", () => {
        const { open, plugin, fake, frames } = fakeConnected();
        const menu = open("gdm-context", { channel: "280" });
        plugin.socket.readyState = 3;
        menu.click("Auto-reply to everyone here");
        assert.deepEqual(frames, []);
        assert.match(fake.toasts.at(-1).content, /not connected to the auto-reply server: nothing changed/);
    });
});

describe("the fake ContextMenu, as BetterDiscord's", () => {
    it("builds items as BD does: ids from labels, onClick as action, submenu children, toggles through a hook", () => {
        const { fake } = setup();
        const menu = fake.BdApi.ContextMenu;
        const text = menu.buildItem({ label: "Open DM", onClick: () => "clicked" });
        assert.deepEqual([text.type, text.props.id, text.props.action(), text.props.extended], ["MenuItem", "Open-DM", "clicked", true]);
        const sub = menu.buildItem({ type: "submenu", label: "More", items: [{ type: "radio", label: "One", active: true }, { type: "separator" }] });
        assert.deepEqual(sub.props.children.map((item) => [item.type, item.props.checked]), [["MenuRadioItem", true], ["MenuSeparator", undefined]]);
        assert.throws(() => menu.buildItem({ type: "toggle", label: "Outside a render" }), /Invalid hook call/);
    });

    it("throws as React does when a patch renders another number of toggles than before", () => {
        const { fake } = setup();
        let toggles = 1;
        fake.BdApi.ContextMenu.patch("user-context", (tree) => {
            for (let index = 0; index < toggles; index += 1) tree.props.children.push(fake.BdApi.ContextMenu.buildItem({ type: "toggle", label: `T${index}`, action() {} }));
        });
        const menu = fake.contextMenu.open("user-context", {});
        assert.equal(menu.click("T0"), true);
        assert.equal(menu.find("T0").props.checked, true); // the hook's state, kept over the re-render
        toggles = 2;
        assert.throws(() => menu.render(), /Rendered more hooks/);
    });
});

describe("pure parts", () => {
    it("menuTargets reads Discord's props; a raw channel's recipients may be user objects", () => {
        const guildName = (id) => ({ 900: "My Server" })[id] ?? null;
        const dm = { id: "260", type: 1, recipients: [{ id: "150", username: "sam_42" }] };
        const targets = menuTargets("user-context", { user: { id: "150", username: "sam_42", global_name: "Sam" }, channel: dm }, { selfId: SELF.id, guildName });
        assert.deepEqual(targets.map((t) => [t.user, t.channel, t.text, t.label]), [
            ["150", "260", "Auto-reply to Sam here", "Sam (DM)"],
            ["150", "@dms", "Auto-reply to Sam in all our DMs", "Sam (all DMs)"],
        ]);
        const announcements = { id: "272", type: 5, name: "news", guild_id: "901" };
        assert.deepEqual(menuTargets("user-context", { user: { id: "150", username: "sam_42" }, channel: announcements }, { guildName })[0].label, "sam_42 in #news · server");
        assert.equal(menuTargets("user-context", { user: { id: "150", username: "x".repeat(300) } })[0].label.length, 200);
        assert.deepEqual(menuTargets("message", { channel: dm }), []);
    });

    it("appendMenuItem handles children as an array, one element, or none", () => {
        const item = { type: "MenuItem", props: {} };
        const array = { props: { children: [1] } };
        const one = { props: { children: 1 } };
        const none = { props: {} };
        for (const tree of [array, one, none]) assert.equal(appendMenuItem(tree, item), true);
        assert.deepEqual([array.props.children, one.props.children, none.props.children], [[1, item], [1, item], [item]]);
        assert.equal(appendMenuItem(null, item), false);
    });

    it("autoReplyMenu has the same toggles whatever the rules and the connection", () => {
        const targets = menuTargets("user-context", { user: { id: "150", username: "sam" }, channel: { id: "260", type: 1, recipients: ["150"] } });
        const toggles = (state) => autoReplyMenu(targets, state, () => {}).items.filter((item) => item.type === "toggle").map((item) => item.id);
        const states = [
            { connected: false, rules: [], personas: [] },
            { connected: true, rules: [], personas: ["a"] },
            { connected: true, rules: [discordRule("150", "260")], personas: ["a"] },
            { connected: true, rules: [fileRule("150", "@dms")], personas: [] },
        ];
        const first = toggles(states[0]);
        assert.equal(first.length, 4);
        for (const state of states) assert.deepEqual(toggles(state), first);
        assert.equal(autoReplyMenu([], states[1], () => {}), null);
    });

    it("isWatched: @dms matches messages without a guild only", () => {
        const frame = (author, channel, guild, self = false) => ({ author: { id: author }, channel, guild, self });
        const watch = [{ user: "150", channel: "@dms" }];
        assert.ok(isWatched(watch, frame("150", "260", null)));
        assert.ok(isWatched(watch, frame("150", "280", null)));
        assert.ok(!isWatched(watch, frame("150", "270", "900")));
        assert.ok(!isWatched(watch, frame("151", "260", null)));
        assert.ok(isWatched(watch, frame(SELF.id, "260", null, true)));
        assert.ok(!isWatched(watch, frame(SELF.id, "270", "900", true)));
    });

    it("chatRules and indicatorText: which rules cover a chat, and whether replies go out now", () => {
        const rules = rulesState({ rules: [discordRule("150", "@dms"), fileRule("151", "*"), fileRule("*", "270", { reply_when: "always" }), { user: 1 }] }).rules;
        assert.equal(rules.length, 3);
        assert.deepEqual(chatRules(rules, "260", { dm: true, recipients: ["150"] }).map((r) => r.user), ["150"]);
        assert.deepEqual(chatRules(rules, "280", { dm: true, recipients: ["150", "151"] }).map((r) => r.user), ["150", "151"]);
        assert.deepEqual(chatRules(rules, "270", { dm: false }).map((r) => r.user), ["*"]);
        assert.deepEqual(chatRules(rules, "333"), []);
        assert.equal(indicatorText([], null), null);
        assert.equal(indicatorText(rules.slice(0, 1), null), "Auto-reply on");
        const present = { reply_when: "away", replying: false, away: false };
        assert.equal(indicatorText(rules.slice(0, 1), present), "Auto-reply on · only while you're away");
        assert.equal(indicatorText(rules.slice(0, 1), { ...present, replying: true, away: true }), "Auto-reply on · replying now");
        assert.equal(indicatorText(rules.slice(2), present), "Auto-reply on · replying now"); // the rule's "always"
        assert.equal(indicatorText(rules.slice(0, 1), { reply_when: "always", replying: true, away: false }), "Auto-reply on · replying now");
        assert.equal(indicatorText([{ ...rules[0], reply_when: "away" }], { reply_when: "always", replying: true, away: false }), "Auto-reply on · only while you're away");
    });
});

describe("the settings panel's watched chats and the indicator, without a server", () => {
    it("lists rules by name (else label, else ids) with Remove for Discord rules; updates on a rules frame", () => {
        const { plugin, deliver, frames } = fakeConnected();
        const panel = plugin.getSettingsPanel();
        const list = panel.find((element) => element.className === "discord-auto-reply-rules");
        assert.match(list.children[0].textContent, /No list from the server yet/);
        deliver({ type: "rules", rules: [
            discordRule("150", "260", { label: "Sam (DM)" }),
            discordRule("*", "270", { persona: "friendly", mode: "draft" }),
            discordRule("150", "@dms", { reply_when: "always" }),
            discordRule("151", "@dms", { reply_when: "away", mode: "send" }),
            fileRule("151", "*"),
            discordRule("404", "405", { label: "Old friend (DM)" }),
            discordRule("404", "406"),
        ], personas: ["friendly"] });
        const rows = list.children.map((row) => row.children.map((part) => part.textContent).join(""));
        assert.deepEqual(rows, [
            "Sam · DM · persona: default · replies sent · Discord Remove",
            "everyone · #general · My Server · persona: friendly · drafts first · Discord Remove",
            "Sam · all DMs · persona: default · replies sent · even while you're here · Discord Remove",
            "alex · all DMs · persona: default · replies sent · only while you're away · Discord Remove",
            "alex · everywhere · persona: default · replies sent · reply_config.py REPLY_TO[0]",
            "Old friend (DM) · persona: default · replies sent · Discord Remove",
            "user 404 in channel 406 · persona: default · replies sent · Discord Remove",
        ]);
        list.children[1].children[1].dispatchEvent({ type: "click" });
        assert.deepEqual(frames, [{ type: "rule_remove", user: "*", channel: "270" }]);
        deliver({ type: "rules", rules: [], personas: [] });
        assert.match(list.children.map((row) => row.textContent).join(), /None: right-click/);
    });

    it("shows the pill while the selected chat is watched, per the away status; hides it otherwise and on stop", () => {
        const { plugin, deliver, discord, document } = fakeConnected();
        const pill = () => document.body.children.filter((child) => child.className === "discord-auto-reply-indicator");
        deliver({ type: "rules", rules: [discordRule("150", "@dms"), discordRule("*", "270", { reply_when: "always" })], personas: [] });
        assert.deepEqual(pill(), []); // the home DM is not watched
        discord.open("260");
        assert.equal(pill().length, 1);
        assert.equal(pill()[0].textContent, "Auto-reply on");
        assert.equal(pill()[0].style.position, "fixed");
        deliver({ type: "away_status", switch: "auto", presence: "online", away: false, reply_when: "away", replying: false, always_rules: 0 });
        assert.equal(pill()[0].textContent, "Auto-reply on · only while you're away");
        deliver({ type: "away_status", switch: "on", presence: "online", away: true, reply_when: "away", replying: true, always_rules: 0 });
        assert.equal(pill()[0].textContent, "Auto-reply on · replying now");
        discord.open("333");
        assert.deepEqual(pill(), []);
        discord.open("270");
        assert.equal(pill()[0].textContent, "Auto-reply on · replying now");
        deliver({ type: "rules", rules: [discordRule("150", "@dms")], personas: [] });
        assert.deepEqual(pill(), []);
        discord.open("280"); // a group DM with Sam in it
        assert.equal(pill().length, 1);
        plugin.stop();
        assert.deepEqual(pill(), []);
    });

    it("hides the pill while disconnected", async () => {
        const { plugin, deliver, discord, document } = fakeConnected();
        deliver({ type: "rules", rules: [discordRule("150", "260")], personas: [] });
        discord.open("260");
        assert.equal(document.body.children.length, 1);
        plugin.onSocketEnded(plugin.socket, 1006, { reason: "gone" });
        assert.equal(document.body.children.length, 0);
    });
});

/* ---------- with the real relay server (fake Discord client, fake OpenAI API) ---------- */

const FILE_RULES = [["160", "290"]]; // a DM set in reply_config.py: REPLY_TO[0]
const PERSONAS = { friendly: "You are warm and casual.", formal: "You are formal and precise." };

describe("menus with the real server", () => {
    let llm;
    let server;

    before(async () => {
        llm = await startFakeOpenAI();
        server = await new RelayServer({ port: await freePort(), llm, rules: FILE_RULES, personas: PERSONAS }).start();
    });

    after(async () => {
        while (running.length) running.pop().stop();
        await server?.dispose();
        await llm?.stop();
    });

    /** A plugin welcomed by the server, with its first `rules` frame; the test's people and chats known. */
    async function connected() {
        const context = setup({ settings: server.settings });
        addChats(context.discord);
        context.discord.users.set("160", { id: "160", username: "filed", globalName: "Filed", bot: false });
        context.discord.channels.set("290", { id: "290", type: 1, name: "", guild_id: null, recipients: ["160"] });
        context.plugin.start();
        running.push(context.plugin);
        await waitFor(() => context.plugin.status === "connected" && context.plugin.rules, { what: `a welcome and a rules frame; server log:\n${server.output}` });
        const open = (navId, chat) => context.fake.contextMenu.open(navId, context.discord.menuProps(navId, chat));
        const results = () => context.spy.received.filter((frame) => frame.type === "rule_result");
        /** Click a menu item; resolve with the server's rule_result, once its text is a toast. */
        const click = async (menu, label) => {
            const before = results().length;
            assert.equal(menu.click(label), true, `${label} is clickable`);
            const result = await waitFor(() => results()[before], { what: `the rule_result for ${label}; server log:\n${server.output}` });
            await waitFor(() => context.fake.toasts.some((toast) => toast.content === `DiscordAutoReply: ${result.text}`), { what: "the toast" });
            return result;
        };
        const ruleOf = (user, channel) => context.plugin.rules.rules.find((rule) => rule.user === user && rule.channel === channel);
        const watches = (user, channel) => context.plugin.watch.some((rule) => rule.user === user && rule.channel === channel);
        return { ...context, open, click, ruleOf, watches };
    }

    const repliesIn = (discord, channel) => discord.sent.filter((call) => call.channelId === channel).map((call) => call.message.content);

    it("the welcome brings the rules and personas; a file rule is checked, disabled, and Stop is refused with the server's sentence", async () => {
        const { plugin, open, click, fake, ruleOf } = await connected();
        assert.deepEqual([...plugin.rules.personas].sort(), ["formal", "friendly"]);
        assert.equal(ruleOf("160", "290").source, "file");
        const menu = open("user-context", { user: "160", channel: "290" });
        const item = menu.find("Auto-reply to Filed here");
        assert.deepEqual([item.props.checked, item.props.disabled], [true, true]);
        assert.match(menu.find(/^Set in reply_config\.py/).props.label, /REPLY_TO\[0\]/);
        const result = await click(menu, "Stop auto-replying here");
        assert.equal(result.ok, false);
        assert.match(result.text, /reply_config\.py/);
        assert.equal(fake.toasts.at(-1).type, "error");
        assert.equal(ruleOf("160", "290").source, "file");
    });

    it("a click stores the rule on the server: a message in that chat is forwarded and answered; Stop removes it", async () => {
        const { discord, spy, open, click, ruleOf, watches, fake } = await connected();
        const result = await click(open("user-context", { user: "150", channel: "260" }), "Auto-reply to Sam here");
        assert.equal(result.ok, true, result.text);
        assert.equal(fake.toasts.at(-1).type, "success");
        assert.deepEqual({ ...result.rule, last_reply: null }, { ...result.rule, user: "150", channel: "260", source: "discord", label: "Sam (DM)", last_reply: null });
        await waitFor(() => watches("150", "260") && ruleOf("150", "260"), { what: "the watch and rules frames with the new rule" });
        const question = discord.receive({ channel_id: "260", author: { id: "150", username: "sam_42", global_name: "Sam" }, content: "are you there?" });
        await waitFor(() => repliesIn(discord, "260").length === 1, { what: `the reply; server log:\n${server.output}` });
        assert.equal(echoedText(repliesIn(discord, "260")[0]), "are you there?");
        assert.ok(spy.messages().some((frame) => frame.id === question.id));

        const menu = open("user-context", { user: "150", channel: "260" });
        assert.equal(menu.find("Auto-reply to Sam here").props.checked, true);
        const stopped = await click(menu, "Stop auto-replying here");
        assert.equal(stopped.ok, true, stopped.text);
        await waitFor(() => !watches("150", "260") && !ruleOf("150", "260"), { what: "the rule gone from watch and rules" });
        const later = discord.receive({ channel_id: "260", author: { id: "150", username: "sam_42" }, content: "SECRET-after-stop" });
        assert.ok(!spy.sent.some((frame) => frame.id === later.id), "not forwarded once stopped");
    });

    it("in all our DMs: answered in a DM and a group DM with them, never in a server channel", async () => {
        const { discord, spy, open, click, watches } = await connected();
        discord.users.set("170", { id: "170", username: "robin", globalName: "Robin", bot: false });
        const result = await click(open("user-context", { user: "170", channel: "270" }), "Auto-reply to Robin in all our DMs");
        assert.equal(result.ok, true, result.text);
        await waitFor(() => watches("170", "@dms"), { what: "the @dms rule in the watch list" });
        discord.receive({ channel_id: "262", author: { id: "170", username: "robin" }, content: "dm question" });
        discord.receive({ channel_id: "282", author: { id: "170", username: "robin" }, content: "group question" });
        const inServer = discord.receive({ channel_id: "273", guild_id: "900", author: { id: "170", username: "robin" }, content: "SECRET-in-a-server" });
        await waitFor(() => repliesIn(discord, "262").length === 1 && repliesIn(discord, "282").length === 1, { what: `both DM replies; server log:\n${server.output}` });
        assert.equal(echoedText(repliesIn(discord, "262")[0]), "dm question");
        assert.equal(echoedText(repliesIn(discord, "282")[0]), "group question");
        assert.ok(!spy.sent.some((frame) => frame.id === inServer.id));
        assert.deepEqual(repliesIn(discord, "273"), []);
    });

    it("the persona submenu and the toggles change the stored rule; Draft first makes the next answer a draft", async () => {
        const { discord, open, click, ruleOf, fake } = await connected();
        const chat = { user: "*", channel: "270" };
        assert.equal((await click(open("channel-context", { channel: "270" }), "Auto-reply to everyone in #general")).ok, true);
        await waitFor(() => ruleOf(chat.user, chat.channel), { what: "the rule" });
        const persona = await click(open("channel-context", { channel: "270" }), "formal");
        assert.equal(persona.ok, true, persona.text);
        await waitFor(() => ruleOf("*", "270")?.persona === "formal", { what: "persona formal in the rules frame" });
        assert.equal(open("channel-context", { channel: "270" }).find("formal").props.checked, true);
        // REPLY_WHEN is "always" here (away_status says so): the rule follows it, so the item is checked.
        assert.equal(open("channel-context", { channel: "270" }).find("Even while I'm here").props.checked, true);
        assert.equal((await click(open("channel-context", { channel: "270" }), "Even while I'm here")).ok, true);
        await waitFor(() => ruleOf("*", "270")?.reply_when === "away", { what: "reply_when away" });
        assert.equal((await click(open("channel-context", { channel: "270" }), "Even while I'm here")).ok, true);
        await waitFor(() => ruleOf("*", "270")?.reply_when === "always", { what: "reply_when always" });
        assert.equal((await click(open("channel-context", { channel: "270" }), "Draft first")).ok, true);
        await waitFor(() => ruleOf("*", "270")?.mode === "draft", { what: "mode draft" });
        assert.deepEqual({ persona: ruleOf("*", "270").persona, label: ruleOf("*", "270").label }, { persona: "formal", label: "#general · My Server" });

        discord.receive({ channel_id: "270", guild_id: "900", author: { id: "180", username: "someone" }, content: "draft this" });
        const notice = await waitFor(() => fake.notices.find((each) => /draft this|Draft reply/.test(each.content)), { what: `a draft notice; server log:\n${server.output}` });
        assert.match(notice.content, /^Draft reply to /);
        assert.deepEqual(repliesIn(discord, "270"), []);
        const menu = open("channel-context", { channel: "270" });
        assert.deepEqual(["Draft first", "Even while I'm here"].map((label) => menu.find(label).props.checked), [true, true]);
    });

    it("the settings panel lists the chats by name; Remove deletes a Discord rule on the server", async () => {
        const { plugin, open, click, ruleOf, spy } = await connected();
        assert.equal((await click(open("gdm-context", { channel: "280" }), "Auto-reply to everyone here")).ok, true);
        await waitFor(() => ruleOf("*", "280"), { what: "the group DM rule" });
        const panel = plugin.getSettingsPanel();
        const list = panel.find((element) => element.className === "discord-auto-reply-rules");
        const row = (prefix) => list.children.find((each) => each.children[0]?.textContent.startsWith(prefix));
        assert.ok(row("everyone · group Friends · persona: default"), list.children.map((each) => each.children[0]?.textContent).join("\n"));
        assert.match(row("Filed · DM").children[1].textContent, /reply_config\.py/);
        const before = spy.received.filter((frame) => frame.type === "rule_result").length;
        row("everyone · group Friends").children[1].dispatchEvent({ type: "click" });
        const result = await waitFor(() => spy.received.filter((frame) => frame.type === "rule_result")[before], { what: "the rule_result" });
        assert.equal(result.ok, true, result.text);
        await waitFor(() => !ruleOf("*", "280") && !row("everyone · group Friends"), { what: "the row gone" });
    });

    it("the indicator shows on a watched chat once selected, and hides elsewhere", async () => {
        const { discord, document, open, click, ruleOf } = await connected();
        const pill = () => document.body.children.find((child) => child.className === "discord-auto-reply-indicator") ?? null;
        discord.open("290"); // the file rule's DM
        await waitFor(() => pill()?.textContent === "Auto-reply on · replying now", { what: "the pill (REPLY_WHEN always)" });
        discord.open("333");
        assert.equal(pill(), null);
        discord.users.set("190", { id: "190", username: "kim", globalName: "Kim", bot: false });
        discord.channels.set("264", { id: "264", type: 1, name: "", guild_id: null, recipients: ["190"] });
        discord.open("264");
        assert.equal(pill(), null);
        assert.equal((await click(open("user-context", { user: "190", channel: "264" }), "Auto-reply to Kim here")).ok, true);
        await waitFor(() => ruleOf("190", "264") && pill(), { what: "the pill once the selected chat is watched" });
    });
});
