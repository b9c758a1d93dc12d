//! The chat client's state and its one way of changing: [`ChatState::update`]
//! takes an [`Event`] (a key, a server frame, an HTTP answer, a clock tick)
//! and returns the [`Action`]s the runtime must carry out (send a frame,
//! load history, look up names). No I/O here, so tests drive it directly
//! and render it on ratatui's test backend.

use std::collections::{BTreeMap, HashMap};

use parley_proto::api::{ConversationKind, ConversationSummary, HistoryPage};
use parley_proto::{ConversationId, Message, MessageKind, ReceiptStatus, ServerFrame, UserId};

/// How long a `typing` indicator lasts without being renewed.
pub const TYPING_TTL_MS: i64 = 6_000;
/// History page size.
pub const PAGE: u32 = 50;
/// Lines one PageUp/PageDown moves.
pub const SCROLL_STEP: usize = 10;

/// A key the chat reacts to (translated from the terminal's key events, so
/// the state does not depend on the terminal library).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character for the composer.
    Char(char),
    /// Send the composer's text.
    Enter,
    /// Delete the last character.
    Backspace,
    /// Previous conversation.
    Up,
    /// Next conversation.
    Down,
    /// Next conversation (wraps).
    Tab,
    /// Older messages.
    PageUp,
    /// Newer messages.
    PageDown,
    /// Quit.
    Quit,
}

/// Something that happened.
// `Message` grew its event fields (§8); events are handled as they arrive,
// so boxing would only add an allocation and a pattern change.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    /// A key press.
    Key(Key),
    /// The socket is authenticated; sends not yet acknowledged go again.
    Connected,
    /// The socket went away; the runtime reconnects.
    Disconnected(String),
    /// `GET /v1/conversations`: the list, unread counts and receipt cursors.
    Conversations(Vec<ConversationSummary>),
    /// A page of history; `before` is what was asked for.
    History {
        /// The conversation.
        conversation: ConversationId,
        /// What the page was asked before (None: the newest page).
        before: Option<u64>,
        /// The page.
        page: HistoryPage,
    },
    /// Usernames learned.
    Names(Vec<(UserId, String)>),
    /// A frame from the server.
    Frame(ServerFrame),
    /// Something failed; shown in the status line.
    Failed(String),
    /// The clock, for typing indicators (milliseconds since the epoch).
    Tick(i64),
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a text message over the socket.
    Send {
        /// Where.
        conversation: ConversationId,
        /// Its idempotency key (the same on every retry).
        client_msg_id: String,
        /// The text.
        text: String,
    },
    /// Send a receipt.
    Receipt {
        /// Where.
        conversation: ConversationId,
        /// Delivered or read.
        status: ReceiptStatus,
        /// Up to which seq.
        up_to_seq: u64,
    },
    /// Send a typing indicator.
    Typing {
        /// Where.
        conversation: ConversationId,
        /// Typing or not.
        active: bool,
    },
    /// Subscribe to these users' presence.
    WatchPresence(Vec<UserId>),
    /// Load a page of history (None: the newest).
    LoadHistory {
        /// Which conversation.
        conversation: ConversationId,
        /// Messages below this seq.
        before: Option<u64>,
    },
    /// Reload the conversation list.
    LoadConversations,
    /// Look up these users' names.
    LookupNames(Vec<UserId>),
    /// Leave the chat.
    Quit,
}

/// One message as the chat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its seq (None while the send is not acknowledged).
    pub seq: Option<u64>,
    /// Who sent it.
    pub sender: UserId,
    /// When (for pending sends: when typed).
    pub sent_at_ms: i64,
    /// What it says.
    pub text: String,
    /// A membership change, not a chat line.
    pub system: bool,
}

impl Line {
    /// The chat's view of a message.
    pub fn from_message(message: &Message) -> Line {
        let system = message.kind == MessageKind::System;
        Line {
            seq: Some(message.seq),
            sender: message.sender_id,
            sent_at_ms: message.sent_at_ms,
            text: crate::cli::commands::message_text(message),
            system,
        }
    }
}

/// The tick shown beside one's own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Not acknowledged yet.
    Pending,
    /// ✓ stored by the server.
    Sent,
    /// ✓✓ on the other member's devices (groups: every member's).
    Delivered,
    /// blue ✓✓ read (groups: by every member).
    Read,
}

/// A send waiting for its `sent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its idempotency key.
    pub client_msg_id: String,
    /// The text.
    pub text: String,
    /// When typed.
    pub typed_at_ms: i64,
}

/// One conversation in the list, with what is loaded of it.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Group name.
    pub name: Option<String>,
    /// Member ids.
    pub members: Vec<UserId>,
    /// Highest seq known.
    pub last_seq: u64,
    /// Others' messages above our read cursor.
    pub unread: u64,
    /// Our read cursor.
    pub read_up_to: u64,
    /// Others' delivered cursor (groups: every member's).
    pub delivered_all_up_to: u64,
    /// Others' read cursor (groups: every member's).
    pub read_all_up_to: u64,
    /// Loaded messages by seq.
    pub lines: BTreeMap<u64, Line>,
    /// Own sends not yet acknowledged, in order.
    pub pending: Vec<Pending>,
    /// Whether the newest page was asked for.
    pub loaded: bool,
    /// Whether older messages exist before the first loaded one.
    pub has_older: bool,
    /// A history request is out.
    pub loading: bool,
    /// Who is typing, until when.
    pub typing: HashMap<UserId, i64>,
    /// Lines scrolled up from the bottom.
    pub scroll: usize,
}

impl Conversation {
    fn from_summary(summary: &ConversationSummary) -> Conversation {
        let mut conversation = Conversation {
            id: summary.conversation_id,
            kind: summary.kind,
            name: summary.name.clone(),
            members: summary.members.clone(),
            last_seq: 0,
            unread: 0,
            read_up_to: 0,
            delivered_all_up_to: 0,
            read_all_up_to: 0,
            lines: BTreeMap::new(),
            pending: Vec::new(),
            loaded: false,
            has_older: false,
            loading: false,
            typing: HashMap::new(),
            scroll: 0,
        };
        conversation.apply_summary(summary);
        conversation
    }

    /// Takes the snapshot's counters (they are the truth after a
    /// reconnect); cursors never move backwards.
    fn apply_summary(&mut self, summary: &ConversationSummary) {
        self.kind = summary.kind;
        self.name = summary.name.clone();
        self.members = summary.members.clone();
        self.last_seq = self.last_seq.max(summary.last_seq);
        self.unread = summary.unread_count;
        self.read_up_to = self.read_up_to.max(summary.read_up_to);
        self.delivered_all_up_to = self.delivered_all_up_to.max(summary.delivered_all_up_to);
        self.read_all_up_to = self.read_all_up_to.max(summary.read_all_up_to);
        if let Some(message) = &summary.last_message {
            // Once history is shown, the snapshot's newest message may be
            // one the socket missed while it was down.
            if self.loaded {
                self.lines.insert(message.seq, Line::from_message(message));
            }
        }
    }

    /// The tick of one's own message with this seq.
    pub fn tick(&self, seq: Option<u64>) -> Tick {
        match seq {
            None => Tick::Pending,
            Some(seq) if seq <= self.read_all_up_to => Tick::Read,
            Some(seq) if seq <= self.delivered_all_up_to => Tick::Delivered,
            Some(_) => Tick::Sent,
        }
    }

    /// Who is typing now, by id.
    pub fn typing_users(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = self.typing.keys().copied().collect();
        users.sort();
        users
    }
}

/// A watched user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presence {
    /// At least one live socket.
    pub online: bool,
    /// When last online, if shown.
    pub last_seen_ms: Option<i64>,
}

/// Everything the chat shows.
#[derive(Debug, Clone)]
pub struct ChatState {
    /// Who we are.
    pub me: UserId,
    /// Usernames by id.
    pub names: HashMap<UserId, String>,
    /// Conversations, most recent activity first.
    pub conversations: Vec<Conversation>,
    /// The open conversation.
    pub selected: Option<ConversationId>,
    /// The text being typed.
    pub composer: String,
    /// Whether we told the open conversation we are typing.
    pub typing_sent: bool,
    /// Presence of watched users.
    pub presence: HashMap<UserId, Presence>,
    /// Users whose presence we asked for.
    pub watched: Vec<UserId>,
    /// The socket is up.
    pub connected: bool,
    /// The status line.
    pub status: String,
    /// The clock (milliseconds since the epoch), from the last event.
    pub now_ms: i64,
    /// For unique idempotency keys.
    pub sends: u64,
    /// Prefix of this run's idempotency keys.
    pub key_prefix: String,
}

impl ChatState {
    /// An empty chat for `me`; `key_prefix` makes this run's idempotency
    /// keys unique (a random string in the binary, fixed in tests).
    pub fn new(me: UserId, username: &str, key_prefix: &str, now_ms: i64) -> ChatState {
        let mut names = HashMap::new();
        names.insert(me, username.to_owned());
        ChatState {
            me,
            names,
            conversations: Vec::new(),
            selected: None,
            composer: String::new(),
            typing_sent: false,
            presence: HashMap::new(),
            watched: Vec::new(),
            connected: false,
            status: "connecting…".into(),
            now_ms,
            sends: 0,
            key_prefix: key_prefix.to_owned(),
        }
    }

    /// The conversation with this id.
    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.iter().find(|c| c.id == id)
    }

    fn conversation_mut(&mut self, id: ConversationId) -> Option<&mut Conversation> {
        self.conversations.iter_mut().find(|c| c.id == id)
    }

    /// The open conversation.
    pub fn open(&self) -> Option<&Conversation> {
        self.selected.and_then(|id| self.conversation(id))
    }

    /// A user's name (their id until it is known).
    pub fn name(&self, user: UserId) -> String {
        self.names
            .get(&user)
            .cloned()
            .unwrap_or_else(|| user.to_string())
    }

    /// The other member of a direct conversation.
    pub fn peer(&self, conversation: &Conversation) -> Option<UserId> {
        if conversation.kind != ConversationKind::Direct {
            return None;
        }
        conversation.members.iter().copied().find(|m| *m != self.me)
    }

    /// What the list and the header call a conversation.
    pub fn title(&self, conversation: &Conversation) -> String {
        match conversation.kind {
            ConversationKind::Group => conversation.name.clone().unwrap_or_default(),
            ConversationKind::Direct => match self.peer(conversation) {
                Some(peer) => format!("@{}", self.name(peer)),
                None => format!("@{}", self.name(self.me)),
            },
        }
    }

    /// Applies one event; returns what the runtime must do.
    pub fn update(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Key(key) => self.on_key(key, &mut actions),
            Event::Connected => {
                self.connected = true;
                self.status = "connected".into();
                actions.push(Action::LoadConversations);
                // Unacknowledged sends go again with the same key: the
                // server stores each once.
                for conversation in &self.conversations {
                    for pending in &conversation.pending {
                        actions.push(Action::Send {
                            conversation: conversation.id,
                            client_msg_id: pending.client_msg_id.clone(),
                            text: pending.text.clone(),
                        });
                    }
                }
                if !self.watched.is_empty() {
                    actions.push(Action::WatchPresence(self.watched.clone()));
                }
            }
            Event::Disconnected(why) => {
                self.connected = false;
                self.typing_sent = false;
                self.status = format!("reconnecting… ({why})");
            }
            Event::Conversations(list) => self.on_conversations(list, &mut actions),
            Event::History {
                conversation,
                before,
                page,
            } => self.on_history(conversation, before, page, &mut actions),
            Event::Names(names) => self.names.extend(names),
            Event::Frame(frame) => self.on_frame(frame, &mut actions),
            Event::Failed(why) => self.status = why,
            Event::Tick(now_ms) => {
                self.now_ms = now_ms;
                for conversation in &mut self.conversations {
                    conversation.typing.retain(|_, until| *until > now_ms);
                }
            }
        }
        actions
    }

    fn on_key(&mut self, key: Key, actions: &mut Vec<Action>) {
        match key {
            Key::Quit => actions.push(Action::Quit),
            Key::Char(c) => {
                self.composer.push(c);
                self.typing_changed(actions);
            }
            Key::Backspace => {
                self.composer.pop();
                self.typing_changed(actions);
            }
            Key::Enter => self.send_composer(actions),
            Key::Up => self.select_by(-1, false, actions),
            Key::Down => self.select_by(1, false, actions),
            Key::Tab => self.select_by(1, true, actions),
            Key::PageUp => {
                let Some(id) = self.selected else { return };
                let Some(conversation) = self.conversation_mut(id) else {
                    return;
                };
                let visible = conversation.lines.len() + conversation.pending.len();
                conversation.scroll =
                    (conversation.scroll + SCROLL_STEP).min(visible.saturating_sub(1));
                // Near the top of what is loaded: fetch the page before it.
                if conversation.scroll + SCROLL_STEP >= visible
                    && conversation.has_older
                    && !conversation.loading
                {
                    conversation.loading = true;
                    let before = conversation.lines.keys().next().copied();
                    actions.push(Action::LoadHistory {
                        conversation: id,
                        before,
                    });
                }
            }
            Key::PageDown => {
                let Some(id) = self.selected else { return };
                if let Some(conversation) = self.conversation_mut(id) {
                    conversation.scroll = conversation.scroll.saturating_sub(SCROLL_STEP);
                }
                self.mark_read(actions);
            }
        }
    }

    fn typing_changed(&mut self, actions: &mut Vec<Action>) {
        let Some(conversation) = self.selected else {
            return;
        };
        let active = !self.composer.is_empty();
        if active != self.typing_sent && self.connected {
            self.typing_sent = active;
            actions.push(Action::Typing {
                conversation,
                active,
            });
        }
    }

    fn send_composer(&mut self, actions: &mut Vec<Action>) {
        let Some(id) = self.selected else {
            self.status = "no conversation to send to".into();
            return;
        };
        let text = self.composer.trim().to_owned();
        if text.is_empty() {
            return;
        }
        self.composer.clear();
        self.typing_changed(actions);
        self.sends += 1;
        let client_msg_id = format!("{}-{}", self.key_prefix, self.sends);
        let now_ms = self.now_ms;
        let connected = self.connected;
        if let Some(conversation) = self.conversation_mut(id) {
            conversation.pending.push(Pending {
                client_msg_id: client_msg_id.clone(),
                text: text.clone(),
                typed_at_ms: now_ms,
            });
            conversation.scroll = 0;
        }
        // While disconnected the send waits: `Connected` sends it.
        if connected {
            actions.push(Action::Send {
                conversation: id,
                client_msg_id,
                text,
            });
        }
    }

    fn select_by(&mut self, step: isize, wrap: bool, actions: &mut Vec<Action>) {
        if self.conversations.is_empty() {
            return;
        }
        let count = self.conversations.len() as isize;
        let current = self
            .selected
            .and_then(|id| self.conversations.iter().position(|c| c.id == id))
            .map(|i| i as isize)
            .unwrap_or(-1);
        let next = if wrap {
            (current + step).rem_euclid(count)
        } else {
            (current + step).clamp(0, count - 1)
        };
        let id = self.conversations[next as usize].id;
        self.select(id, actions);
    }

    /// Opens a conversation: loads its newest page, marks it read.
    pub fn select(&mut self, id: ConversationId, actions: &mut Vec<Action>) {
        if self.selected == Some(id) {
            return;
        }
        if self.typing_sent
            && let Some(previous) = self.selected
        {
            actions.push(Action::Typing {
                conversation: previous,
                active: false,
            });
            self.typing_sent = false;
        }
        self.selected = Some(id);
        if let Some(conversation) = self.conversation_mut(id)
            && !conversation.loaded
            && !conversation.loading
        {
            conversation.loading = true;
            actions.push(Action::LoadHistory {
                conversation: id,
                before: None,
            });
        }
        self.mark_read(actions);
        self.typing_changed(actions);
    }

    /// The open conversation is on screen at its newest line: read.
    fn mark_read(&mut self, actions: &mut Vec<Action>) {
        let Some(id) = self.selected else { return };
        let Some(conversation) = self.conversation_mut(id) else {
            return;
        };
        if conversation.scroll == 0 && conversation.read_up_to < conversation.last_seq {
            conversation.read_up_to = conversation.last_seq;
            conversation.unread = 0;
            actions.push(Action::Receipt {
                conversation: id,
                status: ReceiptStatus::Read,
                up_to_seq: conversation.last_seq,
            });
        }
    }

    fn on_conversations(&mut self, list: Vec<ConversationSummary>, actions: &mut Vec<Action>) {
        let mut previous: HashMap<ConversationId, Conversation> =
            self.conversations.drain(..).map(|c| (c.id, c)).collect();
        let mut unknown = Vec::new();
        for summary in &list {
            let conversation = match previous.remove(&summary.conversation_id) {
                Some(mut known) => {
                    known.apply_summary(summary);
                    known
                }
                None => Conversation::from_summary(summary),
            };
            for member in &conversation.members {
                if !self.names.contains_key(member) && !unknown.contains(member) {
                    unknown.push(*member);
                }
            }
            // This device has every message the list mentions.
            if conversation.last_seq > 0 && summary.delivered_up_to < conversation.last_seq {
                actions.push(Action::Receipt {
                    conversation: conversation.id,
                    status: ReceiptStatus::Delivered,
                    up_to_seq: conversation.last_seq,
                });
            }
            self.conversations.push(conversation);
        }
        if !unknown.is_empty() {
            actions.push(Action::LookupNames(unknown));
        }
        let peers: Vec<UserId> = self
            .conversations
            .iter()
            .filter_map(|c| self.peer(c))
            .filter(|p| !self.watched.contains(p))
            .take(256usize.saturating_sub(self.watched.len()))
            .collect();
        if !peers.is_empty() {
            self.watched.extend(&peers);
            actions.push(Action::WatchPresence(peers));
        }
        match self.selected {
            Some(id) if self.conversation(id).is_some() => self.mark_read(actions),
            _ => {
                self.selected = None;
                if let Some(first) = self.conversations.first().map(|c| c.id) {
                    self.select(first, actions);
                }
            }
        }
    }

    fn on_history(
        &mut self,
        id: ConversationId,
        before: Option<u64>,
        page: HistoryPage,
        actions: &mut Vec<Action>,
    ) {
        let Some(conversation) = self.conversation_mut(id) else {
            return;
        };
        conversation.loading = false;
        conversation.loaded = true;
        // Pages are asked for newest first, then each before the last:
        // the latest answer says whether anything older is left.
        let _ = before;
        conversation.has_older = page.has_more;
        for message in &page.messages {
            conversation.last_seq = conversation.last_seq.max(message.seq);
            conversation
                .lines
                .insert(message.seq, Line::from_message(message));
        }
        let senders: Vec<UserId> = page
            .messages
            .iter()
            .map(|m| m.sender_id)
            .filter(|s| !self.names.contains_key(s))
            .collect();
        if !senders.is_empty() {
            actions.push(Action::LookupNames(senders));
        }
        if self.selected == Some(id) {
            self.mark_read(actions);
        }
    }

    fn on_frame(&mut self, frame: ServerFrame, actions: &mut Vec<Action>) {
        match frame {
            ServerFrame::Message { message, .. } => self.on_message(&message, actions),
            ServerFrame::Sent {
                client_msg_id,
                conversation_id,
                seq,
                sent_at_ms,
                ..
            } => {
                let me = self.me;
                let Some(conversation) = self.conversation_mut(conversation_id) else {
                    return;
                };
                let Some(at) = conversation
                    .pending
                    .iter()
                    .position(|p| p.client_msg_id == client_msg_id)
                else {
                    return;
                };
                let pending = conversation.pending.remove(at);
                conversation.last_seq = conversation.last_seq.max(seq);
                // Our own send advances our own cursors.
                conversation.read_up_to = conversation.read_up_to.max(seq);
                conversation.lines.insert(
                    seq,
                    Line {
                        seq: Some(seq),
                        sender: me,
                        sent_at_ms,
                        text: pending.text,
                        system: false,
                    },
                );
            }
            ServerFrame::Receipt {
                conversation_id,
                user_id,
                status,
                up_to_seq,
            } => {
                let me = self.me;
                let Some(conversation) = self.conversation_mut(conversation_id) else {
                    return;
                };
                if user_id == me {
                    // Our other device read it.
                    if status == ReceiptStatus::Read && up_to_seq > conversation.read_up_to {
                        conversation.read_up_to = up_to_seq;
                        if up_to_seq >= conversation.last_seq {
                            conversation.unread = 0;
                        }
                    }
                } else if conversation.kind == ConversationKind::Direct {
                    conversation.delivered_all_up_to =
                        conversation.delivered_all_up_to.max(up_to_seq);
                    if status == ReceiptStatus::Read {
                        conversation.read_all_up_to = conversation.read_all_up_to.max(up_to_seq);
                    }
                }
            }
            ServerFrame::ReceiptSummary {
                conversation_id,
                delivered_all_up_to,
                read_all_up_to,
            } => {
                if let Some(conversation) = self.conversation_mut(conversation_id) {
                    conversation.delivered_all_up_to =
                        conversation.delivered_all_up_to.max(delivered_all_up_to);
                    conversation.read_all_up_to = conversation.read_all_up_to.max(read_all_up_to);
                }
            }
            ServerFrame::Typing {
                conversation_id,
                user_id,
                active,
            } => {
                let until = self.now_ms + TYPING_TTL_MS;
                if let Some(conversation) = self.conversation_mut(conversation_id) {
                    if active {
                        conversation.typing.insert(user_id, until);
                    } else {
                        conversation.typing.remove(&user_id);
                    }
                }
            }
            ServerFrame::Presence {
                user_id,
                online,
                last_seen_ms,
            } => {
                self.presence.insert(
                    user_id,
                    Presence {
                        online,
                        last_seen_ms,
                    },
                );
            }
            ServerFrame::Error {
                code,
                message,
                reference,
                ..
            } => {
                self.status = format!("{code}: {message}");
                // A refused send will not be acknowledged: drop it, and
                // say so, rather than retrying it forever.
                if let Some(reference) = reference {
                    for conversation in &mut self.conversations {
                        conversation
                            .pending
                            .retain(|p| p.client_msg_id != reference);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, message: &Message, actions: &mut Vec<Action>) {
        let me = self.me;
        let id = message.conversation_id;
        let Some(at) = self.conversations.iter().position(|c| c.id == id) else {
            // A conversation we did not know: someone started it.
            actions.push(Action::LoadConversations);
            return;
        };
        if !self.names.contains_key(&message.sender_id) {
            actions.push(Action::LookupNames(vec![message.sender_id]));
        }
        let mut conversation = self.conversations.remove(at);
        let new = message.seq > conversation.last_seq;
        conversation.last_seq = conversation.last_seq.max(message.seq);
        conversation.typing.remove(&message.sender_id);
        // Our own messages from another device, or our pending send whose
        // `sent` is still on its way: either way it is ours and read.
        conversation.pending.retain(|p| {
            Some(p.client_msg_id.as_str()) != message.client_msg_id.as_deref()
                || message.sender_id != me
        });
        if conversation.loaded || message.kind == MessageKind::System {
            conversation
                .lines
                .insert(message.seq, Line::from_message(message));
        }
        if message.sender_id == me {
            conversation.read_up_to = conversation.read_up_to.max(message.seq);
        } else if new && message.seq > conversation.read_up_to {
            conversation.unread += 1;
            actions.push(Action::Receipt {
                conversation: id,
                status: ReceiptStatus::Delivered,
                up_to_seq: message.seq,
            });
        }
        if message.kind == MessageKind::System {
            // Membership or name changed: the list has the new state.
            actions.push(Action::LoadConversations);
        }
        // Most recent activity first.
        self.conversations.insert(0, conversation);
        if self.selected == Some(id) {
            self.mark_read(actions);
        }
    }
}
