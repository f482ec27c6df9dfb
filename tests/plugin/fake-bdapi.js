"use strict";
// A fake of BetterDiscord's BdApi (v1.13 surface) over a fake webpack registry of Discord modules.
// Module search follows BD's src/betterdiscord/webpack/{searching,filter,shared}.ts: filters run over
// each module's exports, then its default key (A/Ay/default) or, with searchExports, every export.
// The APIs BD 1.13 removed (Filters.byProps, findModuleByProps, BdApi.showToast, loadData/saveData)
// are deliberately absent.

const SELF = { id: "999000000000000001", username: "owner", bot: false };

/** A Flux dispatcher: synchronous dispatch to subscribers by action type. */
class FakeDispatcher {
    constructor() {
        this.subscribers = new Map();
        this.dispatched = [];
    }

    subscribe(type, listener) {
        if (!this.subscribers.has(type)) this.subscribers.set(type, new Set());
        this.subscribers.get(type).add(listener);
    }

    unsubscribe(type, listener) {
        this.subscribers.get(type)?.delete(listener);
    }

    register() {
        return "dispatch-token";
    }

    isDispatching() {
        return false;
    }

    dispatch(action) {
        this.dispatched.push(action);
        for (const listener of [...(this.subscribers.get(action.type) ?? [])]) listener(action);
        return Promise.resolve();
    }

    listenerCount(type) {
        return this.subscribers.get(type)?.size ?? 0;
    }
}

/** A Flux store's change listeners, as Discord's stores have them (addChangeListener/emitChange). */
class FakeStore {
    constructor(name, methods) {
        this._dispatchToken = `${name}-token`;
        this.name = name;
        this.listeners = new Set();
        Object.assign(this, methods);
    }

    getName() {
        return this.name;
    }

    addChangeListener(listener) {
        this.listeners.add(listener);
    }

    removeChangeListener(listener) {
        this.listeners.delete(listener);
    }

    emitChange() {
        for (const listener of [...this.listeners]) listener();
    }
}

let snowflake = 1300000000000000000n;
function nextId() {
    snowflake += 1n;
    return String(snowflake);
}

const GUILDS = [
    { id: "777", name: "Test Server" },
    { id: "900", name: "My Server" },
];

// Channels the fake client knows: DMs have no guild. The client starts on the "home" DM.
const CHANNELS = [
    { id: "100", type: 1, guild_id: null }, // home: a DM with someone else
    { id: "222", type: 1, name: "", guild_id: null, recipients: ["111"] }, // the DM with the friend of the tests
    { id: "333", type: 0, guild_id: "777" }, // a text channel in a server
    { id: "445", type: 0, name: "channel-445", guild_id: "900" }, // a named text channel
];

/**
 * The fake Discord client: modules in a webpack-like registry, plus helpers to play gateway events.
 * `missing` names modules to leave out: "dispatcher", "userStore", "messageActions", "typing",
 * "router", "selectedChannelStore", "selfPresenceStore", "presenceStore". With `echo` (default), sendMessage dispatches the optimistic
 * local copy and then the gateway copy of the owner's message, as the real client does. The
 * copies carry the nonce passed to sendMessage; with `keepNonce: false` they carry one of the
 * client's own instead (whether Discord's client keeps a caller's nonce is unverified).
 * `router` is "named" (an object with transitionTo, as older clients export it) or "mangled" (the
 * bare function under a minified export name, as current clients do).
 *
 * Navigation behaves like the client's: `transitionTo(path)` logs "transitionTo - Transitioning to
 * PATH", and `navigationDelayMs` later the route's channel is selected (a CHANNEL_SELECT action
 * that SelectedChannelStore follows) if the path names a channel the client knows under its own
 * guild (or @me for a DM); otherwise, or while `navigationBlocked` is set, the selection stays.
 * The owner's status (`discord.status`, changed with `setStatus`) is in SelfPresenceStore, as in the
 * client, and mirrored by PresenceStore; their custom status (`setCustomStatus`) is an activity of
 * type 4 in SelfPresenceStore; `users` and `channels` add to what the stores know.
 */
function createFakeDiscord({ missing = [], echo = true, router = "named", keepNonce = true } = {}) {
    const dispatcher = new FakeDispatcher();
    const sent = []; // sendMessage calls
    const decoySent = [];
    const typing = [];
    const navigations = []; // paths given to transitionTo
    const discord = { dispatcher, sent, decoySent, typing, navigations, self: SELF, failNextSend: null, sendDelayMs: 0, navigationDelayMs: 30, navigationBlocked: false };
    discord.status = "online";
    discord.users = new Map([["111", { id: "111", username: "friend", globalName: "Friend", bot: false }]]);
    discord.channels = new Map(CHANNELS.map((channel) => [channel.id, channel]));
    discord.guilds = new Map(GUILDS.map((guild) => [guild.id, guild]));
    const channels = discord.channels;
    let selectedChannelId = "100";

    const userStore = {
        _dispatchToken: "user-store-token",
        _dispatcher: dispatcher,
        getName: () => "UserStore",
        getCurrentUser: () => ({ ...SELF }),
        getUser: (id) => (id === SELF.id ? { ...SELF } : discord.users.has(id) ? { ...discord.users.get(id) } : null),
    };
    const channelStore = {
        _dispatchToken: "channel-store-token",
        getName: () => "ChannelStore",
        getChannel: (id) => (channels.has(id) ? { ...channels.get(id) } : undefined),
    };
    const guildStore = {
        _dispatchToken: "guild-store-token",
        getName: () => "GuildStore",
        getGuild: (id) => (discord.guilds.has(id) ? { ...discord.guilds.get(id) } : undefined),
    };
    const selectedChannelStore = {
        _dispatchToken: "selected-channel-store-token",
        getName: () => "SelectedChannelStore",
        getChannelId: () => selectedChannelId,
        getLastSelectedChannelId: () => selectedChannelId,
        getVoiceChannelId: () => null,
    };
    dispatcher.subscribe("CHANNEL_SELECT", (action) => {
        selectedChannelId = action.channelId;
    });
    function transitionTo(path) {
        navigations.push(path);
        discord.routerLog = `transitionTo - Transitioning to ${path}`;
        const match = /^\/channels\/(@me|\d+)\/(\d+)$/.exec(path);
        setTimeout(() => {
            const channel = match && channels.get(match[2]);
            if (discord.navigationBlocked || !channel || (channel.guild_id ?? "@me") !== match[1]) return;
            dispatcher.dispatch({ type: "CHANNEL_SELECT", guildId: channel.guild_id, channelId: channel.id });
        }, discord.navigationDelayMs);
    }
    const namedRouter = {
        transitionTo,
        transitionToGuild: (guildId, channelId) => transitionTo(`/channels/${guildId}/${channelId ?? ""}`),
        replaceWith: transitionTo,
        back() {},
        forward() {},
    };
    discord.activities = []; // the owner's activities; a custom status is type 4 with `state`
    const selfPresenceStore = new FakeStore("SelfPresenceStore", {
        getStatus: () => discord.status,
        getActivities: () => discord.activities.map((activity) => ({ ...activity })),
    });
    const presenceStore = new FakeStore("PresenceStore", {
        getStatus: (userId, guildId = null, fallback = "offline") => (userId === SELF.id ? discord.status : fallback),
    });
    /** The owner's status changes (Discord sets idle by itself after a while): the stores emit. */
    discord.setStatus = (status) => {
        discord.status = status;
        selfPresenceStore.emitChange();
        presenceStore.emitChange();
    };
    /** The owner sets (or, with "", clears) a custom status: the client stores it as an activity. */
    discord.setCustomStatus = (text) => {
        discord.activities = text ? [{ type: 4, name: "Custom Status", state: text }] : [];
        selfPresenceStore.emitChange();
    };
    discord.presenceListeners = () => selfPresenceStore.listeners.size + presenceStore.listeners.size;
    const messageActions = {
        sendMessage(channelId, message, waitForChannelReady, options = {}) {
            sent.push({ channelId, message, waitForChannelReady, options });
            if (discord.failNextSend) {
                const error = discord.failNextSend;
                discord.failNextSend = null;
                return Promise.reject(error);
            }
            const nonce = (keepNonce && options.nonce) || nextId();
            const base = {
                channel_id: channelId,
                author: { ...SELF },
                content: message.content,
                type: options.messageReference ? 19 : 0,
                flags: 0,
                nonce,
                timestamp: new Date().toISOString(),
            };
            if (echo) dispatcher.dispatch({ type: "MESSAGE_CREATE", channelId, message: { ...base, id: nonce, state: "SENDING" }, optimistic: true, isPushNotification: false });
            return new Promise((resolve) => {
                setTimeout(() => {
                    const real = { ...base, id: nextId() };
                    if (echo) dispatcher.dispatch({ type: "MESSAGE_CREATE", channelId, message: real, optimistic: false, isPushNotification: false });
                    resolve({ ok: true, status: 200, body: real });
                }, discord.sendDelayMs);
            });
        },
        editMessage() {},
        deleteMessage() {},
        receiveMessage() {},
        sendBotMessage() {},
    };
    const typingActions = {
        startTyping(channelId) {
            typing.push(channelId);
        },
        stopTyping() {},
    };

    // The registry, decoys first so that sloppy filters pick the wrong module.
    const modules = [
        { exports: "a string export" },
        { exports: null },
        { exports: { A: { get() {}, set() {}, remove() {}, clear() {} } } }, // storage: BD skips it
        { exports: { getToken() {}, getEmail() {}, showToken() {} } }, // token module: BD skips it
        // A different "sendMessage" (e.g. Clyde/bot messages) without editMessage.
        { exports: { A: { sendMessage: (...args) => decoySent.push(args), sendClydeError() {} } } },
        // An emitter with dispatch and subscribe but no register.
        { exports: { A: { dispatch() {}, subscribe() {}, emit() {} } } },
        { exports: { A: { startTyping: () => { throw new Error("decoy typing module"); } } } },
        { exports: { __esModule: true, default: channelStore } },
        { exports: { A: guildStore } },
        // An animation helper that also has a transitionTo, and a function that only mentions it.
        { exports: { A: { transitionTo: () => { throw new Error("decoy transitionTo"); }, easing: {} } } },
        { exports: { zx: function describeRoute() { return "transitionTo - the route"; } } },
    ];
    if (!missing.includes("selectedChannelStore")) modules.push({ exports: { A: selectedChannelStore } });
    if (!missing.includes("router")) {
        if (router === "mangled") modules.push({ exports: { uL: transitionTo, aq: () => "/channels/@me", Xy: 3 } });
        else modules.push({ exports: { A: namedRouter } });
    }
    if (!missing.includes("dispatcher")) modules.push({ exports: { Z: { other: true }, h: dispatcher } }); // named export
    if (!missing.includes("userStore")) modules.push({ exports: { A: userStore } });
    if (!missing.includes("messageActions")) modules.push({ exports: { A: messageActions } });
    if (!missing.includes("typing")) modules.push({ exports: { __esModule: true, default: typingActions } });
    if (!missing.includes("selfPresenceStore")) modules.push({ exports: { A: selfPresenceStore } });
    if (!missing.includes("presenceStore")) modules.push({ exports: { Ay: presenceStore } });

    /** Show a channel as if the person clicked it (no CHANNEL_SELECT: see `open`). */
    discord.select = (channelId) => {
        selectedChannelId = channelId;
    };
    /** Open a chat as the client does: a CHANNEL_SELECT action, which SelectedChannelStore follows. */
    discord.open = (channelId) => {
        const channel = channels.get(channelId);
        dispatcher.dispatch({ type: "CHANNEL_SELECT", guildId: channel?.guild_id ?? null, channelId });
    };
    /**
     * The props Discord gives a context menu, as plugins read them: "user-context" {user, channel,
     * guildId, channelSelected} (channel: the DM, or the server channel shown; absent from the
     * friends list), "channel-context" {channel, guild}, "gdm-context" {channel}. Users are
     * UserRecord-like (`globalName`), channels ChannelRecord-like (`recipients` are ids).
     */
    discord.menuProps = (navId, { user, channel } = {}) => {
        const userRecord = user == null ? undefined : { ...discord.users.get(user) };
        const channelRecord = channel == null ? undefined : { ...channels.get(channel) };
        const guild = channelRecord?.guild_id ? { ...discord.guilds.get(channelRecord.guild_id) } : undefined;
        if (navId === "user-context") return { user: userRecord, channel: channelRecord, guildId: channelRecord?.guild_id ?? undefined, channelSelected: channel === selectedChannelId };
        if (navId === "channel-context") return { channel: channelRecord, guild };
        return { channel: channelRecord };
    };
    discord.selectedChannelId = () => selectedChannelId;

    discord.registry = Object.fromEntries(modules.map((module, index) => [String(1000 + index), { id: String(1000 + index), ...module }]));

    /** Play a MESSAGE_CREATE from the gateway (snake_case raw message), like the real client. */
    discord.receive = (fields = {}) => {
        const message = {
            id: nextId(),
            channel_id: "222",
            author: { id: "111", username: "friend", global_name: "Friend", bot: false },
            content: "hello",
            timestamp: new Date().toISOString(),
            type: 0,
            flags: 0,
            attachments: [],
            embeds: [],
            mentions: [],
            ...fields,
        };
        dispatcher.dispatch({ type: "MESSAGE_CREATE", guildId: message.guild_id, channelId: message.channel_id, message, optimistic: false, isPushNotification: false });
        return message;
    };
    return discord;
}

function shouldSkipModule(exports) {
    if (!(typeof exports === "object" || typeof exports === "function")) return true;
    if (!exports) return true;
    if (ArrayBuffer.isView(exports)) return true;
    return false;
}

function wrapFilter(filter) {
    return (exports, module, id) => {
        try {
            if (exports.remove && exports.set && exports.clear && exports.get && !exports.sort) return false;
            if (exports?.default?.remove && exports?.default?.set && exports?.default?.clear && exports?.default?.get && !exports?.default?.sort) return false;
            if (exports.getToken || exports.getEmail || exports.showToken) return false;
            if (exports?.default?.getToken || exports?.default?.getEmail || exports?.default?.showToken) return false;
            return filter(exports, module, id);
        } catch {
            return false;
        }
    };
}

function getDefaultKey(module) {
    if ("A" in module.exports) return "A";
    if ("Ay" in module.exports) return "Ay";
    if (module.exports.__esModule && "default" in module.exports) return "default";
    return undefined;
}

function getMatched(module, filter, { defaultExport = true, searchExports = false, searchDefault = true, raw = false }) {
    if (shouldSkipModule(module.exports)) return undefined;
    if (filter(module.exports, module, module.id)) return raw ? module : module.exports;
    if (!searchExports && !searchDefault) return undefined;
    let defaultKey;
    const keys = [];
    if (searchExports) keys.push(...Object.keys(module.exports));
    else if (searchDefault && (defaultKey = getDefaultKey(module))) keys.push(defaultKey);
    for (const key of keys) {
        const exported = module.exports[key];
        if (shouldSkipModule(exported)) continue;
        if (filter(exported, module, module.id)) {
            if (!defaultExport && defaultKey === key) return module.exports;
            return raw ? module : exported;
        }
    }
    return undefined;
}

const filterTag = Symbol.for("BetterDiscord.Filter");

function byKeysFilter(props) {
    return Object.assign((module) => {
        if (!module) return false;
        if (typeof module !== "object" && typeof module !== "function") return false;
        for (const prop of props) if (!(prop in module)) return false;
        return true;
    }, { [filterTag]: { props } });
}

function byStoreNameFilter(name) {
    return (module) => Boolean(module?._dispatchToken && module?.getName?.() === name);
}

/**
 * A fake BdApi class bound to `discord` (from createFakeDiscord); records toasts, logs and data.
 * `Net.fetch` is `net.fetch` (BD 1.13 always has Net); by default fake-net.js's createFakeNet() in
 * Node, and in a browser page, which must give its own, a fetch that rejects.
 */
function createFakeBdApi(discord, { document, net = defaultNet() } = {}) {
    const toasts = [];
    const logs = [];
    const store = new Map(); // "plugin/key" -> JSON text, as BD keeps plugins/<name>.config.json
    const lookups = [];

    const getOptions = (args) => {
        const last = args[args.length - 1];
        if (args.length > 1 && typeof last === "object" && last !== null && !Array.isArray(last)) return [args.slice(0, -1), args[args.length - 1]];
        return [args, {}];
    };

    const Webpack = {
        Filters: Object.freeze({
            byKeys: (...keys) => byKeysFilter(keys),
            byStoreName: (name) => byStoreNameFilter(name),
            byStrings: (...strings) => (module) => typeof module === "function" && strings.every((s) => String(module).includes(s)),
            combine: (...filters) => (exports, module, id) => filters.every((filter) => filter(exports, module, id)),
            not: (filter) => (exports, module, id) => !filter(exports, module, id),
        }),
        getModule(filter, options = {}) {
            if (typeof filter !== "function") throw new TypeError("BdApi.Webpack.getModule: filter must be a function");
            lookups.push({ filter: filter[filterTag] ?? null, options });
            const wrapped = wrapFilter(filter);
            const all = [];
            for (const module of Object.values(discord.registry)) {
                const matched = getMatched(module, wrapped, options);
                if (matched === undefined) continue;
                if (options.first !== false) return matched;
                all.push(matched);
            }
            return options.first === false ? all : undefined;
        },
        getByKeys(...args) {
            const [keys, options] = getOptions(args);
            return Webpack.getModule(byKeysFilter(keys), options);
        },
        getAllByKeys(...args) {
            const [keys, options] = getOptions(args);
            return Webpack.getModule(byKeysFilter(keys), { ...options, first: false });
        },
        getByStrings(...args) {
            const [strings, options] = getOptions(args);
            return Webpack.getModule(Webpack.Filters.byStrings(...strings), options);
        },
        getStore(name) {
            return Webpack.getModule(byStoreNameFilter(name));
        },
        getByStrings(...args) {
            const [strings, options] = getOptions(args);
            return Webpack.getModule(Webpack.Filters.byStrings(...strings), options);
        },
    };
    Object.freeze(Webpack);

    const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));
    const makeData = (bound) => Object.freeze({
        load: (...args) => {
            const [plugin, key] = bound ? [bound, args[0]] : args;
            const text = store.get(`${plugin}/${key}`);
            return text === undefined ? undefined : JSON.parse(text);
        },
        save: (...args) => {
            const [plugin, key, value] = bound ? [bound, ...args] : args;
            store.set(`${plugin}/${key}`, JSON.stringify(value));
        },
        delete: (...args) => {
            const [plugin, key] = bound ? [bound, args[0]] : args;
            store.delete(`${plugin}/${key}`);
        },
    });
    const makeLogger = (bound) => {
        const logger = {};
        for (const level of ["log", "info", "warn", "error", "debug"]) {
            logger[level] = (...args) => {
                const [plugin, rest] = bound ? [bound, args] : [args[0], args.slice(1)];
                logs.push({ level, plugin, text: rest.map((part) => (part instanceof Error ? part.message : String(part))).join(" ") });
            };
        }
        return Object.freeze(logger);
    };
    const notices = [];
    const modals = [];
    const UI = Object.freeze({
        showToast(content, options = {}) {
            toasts.push({ content: String(content), type: options.type ?? "" });
        },
        /** Like BD's Notices.show: a bar with buttons whose onClick gets `close`; returns `close`. */
        showNotice(content, options = {}) {
            const notice = { content: String(content), type: options.type ?? "", buttons: options.buttons ?? [], closed: false };
            const close = () => {
                notice.closed = true;
                options.onClose?.();
            };
            notice.click = (label) => notice.buttons.find((button) => button.label === label).onClick(close);
            notices.push(notice);
            return close;
        },
        /** Like BD's Modals.showConfirmationModal: strings and React elements; returns the key. */
        showConfirmationModal(title, content, options = {}) {
            const modal = { title, content: Array.isArray(content) ? content : [content], options, key: `modal-${modals.length}` };
            modal.confirm = () => options.onConfirm?.();
            modal.cancel = () => options.onCancel?.();
            modals.push(modal);
            return modal.key;
        },
    });
    // React.createElement's element shape: {type, props: {...props, children}}; useState works
    // only while a component renders (here: a context menu), as React's hooks do.
    const rendering = { current: null };
    const React = Object.freeze({
        createElement(type, props, ...children) {
            const element = { type, props: { ...(props ?? {}) } };
            if (children.length) element.props.children = children.length === 1 ? children[0] : children;
            return element;
        },
        useState(initial) {
            const component = rendering.current;
            if (!component) throw new Error("Invalid hook call. Hooks can only be called inside of the body of a function component.");
            const index = component.hookIndex++;
            if (index >= component.hooks.length) component.hooks.push(typeof initial === "function" ? initial() : initial);
            return [component.hooks[index], (value) => {
                component.hooks[index] = typeof value === "function" ? value(component.hooks[index]) : value;
                component.dirty = true;
            }];
        },
    });
    const contextMenu = createFakeContextMenu(React, rendering, logs);

    const Net = Object.freeze({ fetch: net.fetch });

    const bounded = new Map();
    class BdApi {
        constructor(pluginName) {
            if (!pluginName) return BdApi;
            if (bounded.has(pluginName)) return bounded.get(pluginName);
            this.Data = makeData(pluginName);
            this.Logger = makeLogger(pluginName);
            bounded.set(pluginName, this);
        }

        get Webpack() {
            return Webpack;
        }

        get UI() {
            return UI;
        }

        get React() {
            return React;
        }

        get Net() {
            return Net;
        }

        get ContextMenu() {
            return contextMenu.api;
        }
    }
    BdApi.Webpack = Webpack;
    BdApi.UI = UI;
    BdApi.React = React;
    BdApi.Net = Net;
    BdApi.ContextMenu = contextMenu.api;
    BdApi.Data = makeData(null);
    BdApi.Logger = makeLogger(null);
    BdApi.version = "1.13.10";
    Object.freeze(BdApi);
    Object.freeze(BdApi.prototype);

    return {
        BdApi,
        toasts,
        logs,
        lookups,
        notices,
        modals,
        contextMenu,
        document,
        net,
        data: {
            get: (plugin, key) => (store.has(`${plugin}/${key}`) ? JSON.parse(store.get(`${plugin}/${key}`)) : undefined),
            set: (plugin, key, value) => store.set(`${plugin}/${key}`, JSON.stringify(clone(value))),
        },
    };
}

const MENU_COMPONENTS = { Separator: "MenuSeparator", CheckboxItem: "MenuCheckboxItem", RadioItem: "MenuRadioItem", ControlItem: "MenuControlItem", Group: "MenuGroup", Item: "MenuItem", Menu: "Menu" };

/**
 * BetterDiscord's ContextMenu (src/betterdiscord/api/contextmenu.ts, v1.13) over fake menus.
 * `api` is BdApi.ContextMenu: `patch(navId, callback)` keeps the callback in a Set per navId and
 * returns the unpatcher; `unpatch(navId, callback)`; `buildItem(props)` builds the element BD builds
 * (type "separator", "submenu" with `items`/`render` built into `children`, "toggle" ->
 * CheckboxItem whose checked state is a React.useState, "radio" -> RadioItem, "control", else
 * Item; `id` made from the label when missing, `action` from `onClick`, `extended: true`);
 * `buildMenuChildren(setup)` with `{type: "group", items}`; `buildMenu(setup)`.
 * `patches` (navId -> Set) and `errors` (what a callback threw; BD logs and goes on) are records.
 * `open(navId, props, {single})` opens Discord's menu `navId`: see FakeMenu.
 */
function createFakeContextMenu(React, rendering, logs) {
    const patches = new Map();
    const errors = [];
    const api = {
        patch(navId, callback) {
            if (!patches.has(navId)) patches.set(navId, new Set());
            patches.get(navId).add(callback);
            return () => api.unpatch(navId, callback);
        },
        unpatch(navId, callback) {
            patches.get(navId)?.delete(callback);
            if (patches.get(navId)?.size === 0) patches.delete(navId);
        },
        buildItem(props) {
            const { type } = props;
            if (type === "separator") return React.createElement(MENU_COMPONENTS.Separator);
            let component = MENU_COMPONENTS.Item;
            if (type === "submenu") {
                if (!props.children) props.children = api.buildMenuChildren(props.render || props.items);
            } else if (type === "toggle" || type === "radio") {
                component = type === "toggle" ? MENU_COMPONENTS.CheckboxItem : MENU_COMPONENTS.RadioItem;
                if (props.active) props.checked = props.active;
            } else if (type === "control") {
                component = MENU_COMPONENTS.ControlItem;
            }
            if (!props.id) props.id = `${props.label.replace(/^[^a-z]+|[^\w-]+/gi, "-")}`;
            if (props.danger) props.color = "danger";
            if (props.onClick && !props.action) props.action = props.onClick;
            props.extended = true;
            if (type === "toggle") {
                const [active, doToggle] = React.useState(props.checked || false);
                const originalAction = props.action;
                props.checked = active;
                props.action = (event) => {
                    originalAction(event);
                    if (!event.defaultPrevented) doToggle(!active);
                };
            }
            return React.createElement(component, props);
        },
        buildMenuChildren(setup) {
            const mapper = (item) => (item.type === "group" ? React.createElement(MENU_COMPONENTS.Group, null, item.items.map(mapper).filter(Boolean)) : api.buildItem(item));
            return setup.map(mapper).filter(Boolean);
        },
        buildMenu(setup) {
            return (props) => React.createElement(MENU_COMPONENTS.Menu, props, api.buildMenuChildren(setup));
        },
        open() {},
        close() {},
        ...MENU_COMPONENTS,
    };
    Object.freeze(api);

    /**
     * One opened context menu. `render()` renders it as Discord does on every update: its own
     * items (an array of groups, or with `single` one group alone), then each patch callback with
     * (tree, props), each call caught and logged as BD does. Like React it throws when a render
     * calls another number of hooks than the last one. `find(label)` searches the tree (a string
     * or a RegExp); `click(label)` runs an item's action as a click does (nothing when disabled)
     * and renders again when a hook's state changed.
     */
    class FakeMenu {
        constructor(navId, props, single) {
            this.navId = navId;
            this.props = props;
            this.single = single;
            this.hooks = [];
            this.hookCount = null;
            this.render();
        }

        render() {
            const own = [
                React.createElement(MENU_COMPONENTS.Group, null, [
                    React.createElement(MENU_COMPONENTS.Item, { id: "profile", label: "Profile", action() {} }),
                    React.createElement(MENU_COMPONENTS.Item, { id: "mention", label: "Mention", action() {} }),
                ]),
                React.createElement(MENU_COMPONENTS.Group, null, React.createElement(MENU_COMPONENTS.Item, { id: "mute-channel", label: "Mute", action() {} })),
            ];
            const tree = React.createElement(MENU_COMPONENTS.Menu, { navId: this.navId, onClose() {}, children: this.single ? own[0] : own });
            this.hookIndex = 0;
            this.dirty = false;
            rendering.current = this;
            try {
                for (const callback of [...(patches.get(this.navId) ?? [])]) {
                    try {
                        callback(tree, this.props);
                    } catch (error) {
                        errors.push(error);
                        logs.push({ level: "error", plugin: "ContextMenu~runPatches", text: `Could not run ${this.navId} patch: ${error.message}` });
                    }
                }
            } finally {
                rendering.current = null;
            }
            if (this.hookCount !== null && this.hookIndex > this.hookCount) throw new Error("Rendered more hooks than during the previous render.");
            if (this.hookCount !== null && this.hookIndex < this.hookCount) throw new Error("Rendered fewer hooks than expected. This may be caused by an accidental early return statement.");
            this.hookCount = this.hookIndex;
            this.tree = tree;
            return tree;
        }

        /** Every element of the tree, depth first. */
        elements() {
            const found = [];
            const walk = (node) => {
                if (Array.isArray(node)) {
                    node.forEach(walk);
                } else if (node && typeof node === "object") {
                    found.push(node);
                    walk(node.props?.children);
                }
            };
            walk(this.tree);
            return found;
        }

        find(label) {
            const matches = (text) => (label instanceof RegExp ? label.test(String(text)) : text === label);
            return this.elements().find((element) => matches(element.props?.label)) ?? null;
        }

        click(label) {
            const item = this.find(label);
            if (!item) throw new Error(`no menu item ${label} in ${this.navId}: ${this.elements().map((e) => e.props?.label).filter(Boolean).join(", ")}`);
            if (item.props.disabled || typeof item.props.action !== "function") return false;
            const event = { type: "click", defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } };
            item.props.action(event);
            if (this.dirty) this.render();
            return true;
        }
    }

    return {
        api,
        patches,
        errors,
        open: (navId, props, { single = false } = {}) => new FakeMenu(navId, props, single),
        patchCount: (navId) => patches.get(navId)?.size ?? 0,
    };
}

function defaultNet() {
    if (typeof require === "function") return require("./fake-net").createFakeNet();
    return { fetch: () => Promise.reject(new Error("the fake BdApi got no Net.fetch in this page")) };
}

/**
 * Just enough of the DOM for a settings panel built with createElement/appendChild/events, and a
 * document that takes event listeners and says whether the window has focus (`focused`).
 */
function createFakeDocument() {
    class FakeElement {
        constructor(tagName) {
            this.tagName = tagName.toUpperCase();
            this.children = [];
            this.style = {};
            this.listeners = new Map();
            this.attributes = {};
            this.className = "";
            this.textContent = "";
            this.value = "";
            this.checked = false;
            this.name = "";
            this.type = "";
            this.parentNode = null;
        }

        appendChild(child) {
            if (child?.parentNode) child.remove();
            this.children.push(child);
            if (typeof child === "object") child.parentNode = this;
            return child;
        }

        remove() {
            if (!this.parentNode) return;
            this.parentNode.children = this.parentNode.children.filter((child) => child !== this);
            this.parentNode = null;
        }

        replaceChildren(...children) {
            for (const child of [...this.children]) child.remove?.();
            this.children = [];
            this.append(...children);
        }

        append(...children) {
            for (const child of children) this.appendChild(child);
        }

        setAttribute(name, value) {
            this.attributes[name] = String(value);
        }

        addEventListener(type, listener) {
            if (!this.listeners.has(type)) this.listeners.set(type, []);
            this.listeners.get(type).push(listener);
        }

        removeEventListener(type, listener) {
            this.listeners.set(type, (this.listeners.get(type) ?? []).filter((l) => l !== listener));
        }

        dispatchEvent(event) {
            for (const listener of this.listeners.get(event.type) ?? []) listener({ target: this, currentTarget: this, ...event });
            return true;
        }

        /** Depth-first search of descendants. */
        find(predicate) {
            for (const child of this.children) {
                if (typeof child !== "object") continue;
                if (predicate(child)) return child;
                const found = child.find(predicate);
                if (found) return found;
            }
            return null;
        }
    }
    const listeners = new Map();
    return {
        focused: true,
        body: new FakeElement("body"),
        createElement: (tag) => new FakeElement(tag),
        createTextNode: (text) => Object.assign(new FakeElement("#text"), { textContent: text }),
        hasFocus() {
            return this.focused;
        },
        addEventListener(type, listener) {
            if (!listeners.has(type)) listeners.set(type, new Set());
            listeners.get(type).add(listener);
        },
        removeEventListener(type, listener) {
            listeners.get(type)?.delete(listener);
        },
        /** Deliver an event as the browser would; the person's own input is `isTrusted`. */
        dispatchEvent(event) {
            for (const listener of [...(listeners.get(event.type) ?? [])]) listener({ isTrusted: true, ...event });
            return true;
        },
        listenerCount(type) {
            return listeners.get(type)?.size ?? 0;
        },
    };
}

// CommonJS for the Node tests; in a browser page (tests/browser) the same file sets `FakeBdApi`.
const exported = { createFakeDiscord, createFakeBdApi, createFakeDocument, FakeDispatcher, SELF };
if (typeof module === "object" && module?.exports) module.exports = exported;
else globalThis.FakeBdApi = exported;
