//! Draws a [`ChatState`] on a ratatui frame: the conversation list with
//! unread counts, the open conversation (header with presence and typing,
//! messages with ticks), the composer and a status line. A pure function of
//! the state, so tests render it on ratatui's `TestBackend`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph};

use super::state::{ChatState, Conversation, Tick};
use crate::cli::commands::format_time;

/// Width of the conversation list.
const LIST_WIDTH: u16 = 28;

/// The text of a tick.
pub fn tick_symbol(tick: Tick) -> &'static str {
    match tick {
        Tick::Pending => "…",
        Tick::Sent => "✓",
        Tick::Delivered | Tick::Read => "✓✓",
    }
}

fn tick_style(tick: Tick) -> Style {
    match tick {
        Tick::Read => Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD),
        _ => Style::new().fg(Color::DarkGray),
    }
}

/// Draws the whole chat.
pub fn render(frame: &mut Frame, state: &ChatState) {
    let [main, composer, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [list, chat] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(10)]).areas(main);
    render_list(frame, state, list);
    render_chat(frame, state, chat);
    render_composer(frame, state, composer);
    let help = "↑↓ conversation · Enter send · PgUp/PgDn scroll · Esc quit";
    let line = TextLine::from(vec![
        Span::styled(
            format!(" {} ", state.status),
            if state.connected {
                Style::new().fg(Color::Green)
            } else {
                Style::new().fg(Color::Yellow)
            },
        ),
        Span::styled(format!("· {help}"), Style::new().fg(Color::DarkGray)),
    ]);
    frame.render_widget(Paragraph::new(line), status);
}

fn render_list(frame: &mut Frame, state: &ChatState, area: Rect) {
    let width = usize::from(area.width.saturating_sub(2));
    let items: Vec<ListItem> = state
        .conversations
        .iter()
        .map(|conversation| {
            let title = state.title(conversation);
            let unread = if conversation.unread > 0 {
                format!(" ({})", conversation.unread)
            } else {
                String::new()
            };
            let room = width.saturating_sub(unread.chars().count() + 1);
            let title: String = title.chars().take(room).collect();
            let pad = width.saturating_sub(title.chars().count() + unread.chars().count());
            let style = if conversation.unread > 0 {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            ListItem::new(TextLine::from(vec![
                Span::styled(title, style),
                Span::raw(" ".repeat(pad)),
                Span::styled(unread, Style::new().fg(Color::Green)),
            ]))
        })
        .collect();
    let selected = state
        .selected
        .and_then(|id| state.conversations.iter().position(|c| c.id == id));
    let list = List::new(items)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title("Conversations"),
        )
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut list_state = ListState::default().with_selected(selected);
    frame.render_stateful_widget(list, area, &mut list_state);
}

/// The header: title, presence (direct) and who is typing.
pub fn header(state: &ChatState, conversation: &Conversation) -> String {
    let mut header = state.title(conversation);
    if let Some(peer) = state.peer(conversation)
        && let Some(presence) = state.presence.get(&peer)
    {
        if presence.online {
            header.push_str(" · online");
        } else if let Some(seen) = presence.last_seen_ms {
            header.push_str(&format!(" · last seen {} UTC", format_time(seen)));
        } else {
            header.push_str(" · offline");
        }
    }
    let typing = conversation.typing_users();
    if !typing.is_empty() {
        let names: Vec<String> = typing.iter().map(|u| state.name(*u)).collect();
        header.push_str(&format!(" · {} typing…", names.join(", ")));
    }
    header
}

/// The rows of a conversation, oldest first, wrapped to `width`.
pub fn rows(
    state: &ChatState,
    conversation: &Conversation,
    width: usize,
) -> Vec<TextLine<'static>> {
    let width = width.max(10);
    let mut rows = Vec::new();
    if conversation.has_older {
        rows.push(TextLine::styled(
            "  ↑ PgUp for older messages",
            Style::new().fg(Color::DarkGray),
        ));
    }
    let shown = conversation
        .lines
        .values()
        .map(|line| {
            (
                line.seq,
                line.sender,
                line.sent_at_ms,
                &line.text,
                line.system,
            )
        })
        .chain(
            conversation
                .pending
                .iter()
                .map(|p| (None, state.me, p.typed_at_ms, &p.text, false)),
        );
    for (seq, sender, sent_at_ms, text, system) in shown {
        let time = format_time(sent_at_ms);
        let time = time.get(11..).unwrap_or(&time).to_owned();
        if system {
            rows.push(TextLine::styled(
                format!(
                    "{time} {} {}",
                    state.name(sender),
                    text.trim_start_matches("* ")
                ),
                Style::new()
                    .fg(Color::DarkGray)
                    .add_modifier(Modifier::ITALIC),
            ));
            continue;
        }
        let own = sender == state.me;
        let name = if own {
            "you".to_owned()
        } else {
            state.name(sender)
        };
        let prefix = format!("{time} {name}: ");
        let tick = own.then(|| conversation.tick(seq));
        let suffix = tick
            .map(|t| format!(" {}", tick_symbol(t)))
            .unwrap_or_default();
        let body_width = width.saturating_sub(prefix.chars().count()).max(4);
        let chunks = wrap(text, body_width);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let lead = if i == 0 {
                Span::styled(
                    prefix.clone(),
                    Style::new().fg(if own { Color::Cyan } else { Color::Magenta }),
                )
            } else {
                Span::raw(" ".repeat(prefix.chars().count()))
            };
            let mut spans = vec![lead, Span::raw(chunk)];
            if i == last
                && let Some(tick) = tick
            {
                spans.push(Span::styled(suffix.clone(), tick_style(tick)));
            }
            rows.push(TextLine::from(spans));
        }
    }
    rows
}

/// Splits `text` into pieces of at most `width` characters, at spaces when
/// it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let needed = if current.is_empty() {
            word.chars().count()
        } else {
            current.chars().count() + 1 + word.chars().count()
        };
        if needed <= width {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
            continue;
        }
        if !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        let mut chars: Vec<char> = word.chars().collect();
        while chars.len() > width {
            pieces.push(chars.drain(..width).collect());
        }
        current = chars.into_iter().collect();
    }
    pieces.push(current);
    pieces
}

fn render_chat(frame: &mut Frame, state: &ChatState, area: Rect) {
    let Some(conversation) = state.open() else {
        let hint = if state.conversations.is_empty() {
            "No conversations yet. Start one with `parley send @user TEXT`."
        } else {
            "Pick a conversation with ↑ and ↓."
        };
        frame.render_widget(
            Paragraph::new(hint).block(Block::default().borders(Borders::ALL)),
            area,
        );
        return;
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(header(state, conversation));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = rows(state, conversation, usize::from(inner.width));
    let height = usize::from(inner.height);
    // Bottom-aligned: the newest row sits on the last line unless
    // scrolled up.
    let scroll = conversation.scroll.min(rows.len().saturating_sub(1));
    let end = rows.len().saturating_sub(scroll);
    let start = end.saturating_sub(height);
    let visible: Vec<TextLine> = rows[start..end].to_vec();
    let top_padding = height.saturating_sub(visible.len());
    let mut lines = vec![TextLine::raw(""); top_padding];
    lines.extend(visible);
    frame.render_widget(Paragraph::new(lines), inner);
}

fn render_composer(frame: &mut Frame, state: &ChatState, area: Rect) {
    let title = match state.open() {
        Some(conversation) => format!("Message {}", state.title(conversation)),
        None => "Message".to_owned(),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    // Show the end of a long draft.
    let width = usize::from(inner.width.saturating_sub(1));
    let count = state.composer.chars().count();
    let shown: String = state
        .composer
        .chars()
        .skip(count.saturating_sub(width))
        .collect();
    let cursor_x = inner.x + u16::try_from(shown.chars().count()).unwrap_or(0);
    frame.render_widget(Paragraph::new(shown).block(block), area);
    frame.set_cursor_position(Position::new(cursor_x, inner.y));
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrapping_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("hello world", 20), ["hello world"]);
        assert_eq!(wrap("hello world", 7), ["hello", "world"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
    }
}
