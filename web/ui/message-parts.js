// Pieces of a message's presentation shared by the chat and the list: the
// tick icons, message text with clickable links, and the sentence that
// describes a system message.

import { me } from '../session.js';
import { displayName } from '../users.js';
import { h } from './dom.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {'Sending'|'Sent'|'Delivered'|'Read'|'Failed'} Tick */

const TICK_SVG = {
  Sending: '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6.2" fill="none" stroke="currentColor" stroke-width="1.5"/><path d="M8 4.5V8l2.4 1.6" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/></svg>',
  Sent: '<svg viewBox="0 0 18 16" aria-hidden="true"><path d="M3.5 8.5l3 3 7-7.5" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round"/></svg>',
  Delivered: '<svg viewBox="0 0 18 16" aria-hidden="true"><path d="M1.5 8.5l3 3 7-7.5M7.8 11.2l.3.3 7-7.5" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round"/></svg>',
  Failed: '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6.5" fill="currentColor"/><path d="M8 4.5v4.2" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/><circle cx="8" cy="11.2" r="1" fill="#fff"/></svg>',
};

/** @param {Tick} s */
export function tickEl(s) {
  const el = h('span', `tick tick-${s.toLowerCase()}`);
  el.setAttribute('role', 'img');
  const label = s === 'Failed' ? 'Failed to send' : s;
  el.setAttribute('aria-label', label);
  el.title = label;
  el.innerHTML = TICK_SVG[s === 'Read' ? 'Delivered' : s];
  return el;
}

const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"]*[^\s<>".,:;'!?)\]]/g;

/**
 * Message text as DOM: plain text nodes, web links (`https://…`, `www.…`)
 * made clickable, laid out in the text's own direction (`dir="auto"`).
 * @param {string} text
 */
export function richText(text) {
  const el = h('div', 'text');
  el.dir = 'auto';
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const i = match.index || 0;
    if (i > last) el.append(document.createTextNode(text.slice(last, i)));
    const a = /** @type {HTMLAnchorElement} */ (h('a', '', match[0]));
    a.href = /^www\./i.test(match[0]) ? `https://${match[0]}` : match[0];
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    el.append(a);
    last = i + match[0].length;
  }
  if (last < text.length) el.append(document.createTextNode(text.slice(last)));
  return el;
}

/**
 * Whether a `role_changed` message is the server promoting a successor
 * because the last admin left: it follows that admin's `member_left`,
 * carrying the leaver as its sender.
 * @param {Message} m @param {{messages: Map<number, Message>, memberIds: string[]}|undefined} c
 */
function isSuccession(m, c) {
  if (!c) return false;
  const prev = c.messages.get(m.seq - 1);
  if (prev) return prev.event === 'member_left' && prev.sender_id === m.sender_id;
  return c.memberIds.length > 0 && !c.memberIds.includes(m.sender_id);
}

/**
 * Text describing a system message. `c` (its conversation) tells an
 * automatic promotion from one an admin made.
 * @param {Message} m @param {{messages: Map<number, Message>, memberIds: string[]}} [c]
 */
export function systemText(m, c) {
  const who = (/** @type {string} */ id) => (id === me() ? 'You' : displayName(id));
  const whom = (/** @type {string[]} */ ids) => {
    const names = ids.map((id) => (id === me() ? 'you' : displayName(id)));
    return names.length <= 1 ? (names[0] || 'someone')
      : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  };
  const actor = who(m.sender_id);
  const ids = Array.isArray(m.user_ids) ? m.user_ids : [];
  switch (m.event) {
    case 'created': return `${actor} created the group${m.name ? ` “${m.name}”` : ''}`;
    case 'member_added': return `${actor} added ${whom(ids)}`;
    case 'member_removed': return `${actor} removed ${whom(ids)}`;
    case 'member_left': return `${ids.length ? who(ids[0]) : actor} left`;
    case 'renamed': {
      const n = m.name || m.text;
      return n ? `${actor} renamed the group to “${n}”` : `${actor} renamed the group`;
    }
    case 'role_changed': {
      const role = /** @type {any} */ (m).role;
      if (role === 'admin' && isSuccession(m, c)) {
        return ids.includes(me()) ? 'You’re now an admin' : `${whom(ids)} ${ids.length > 1 ? 'are' : 'is'} now an admin`;
      }
      return role ? `${actor} made ${whom(ids)} ${role === 'admin' ? 'an admin' : 'a member'}` : `${actor} changed ${whom(ids)}’s role`;
    }
    default: return m.text || 'Group updated';
  }
}
