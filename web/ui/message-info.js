// "Info" on a message: when it was sent and, per member, whether it was
// read or delivered, from the members' receipt cursors (refetched on open).
// In a direct chat that is the other member; in a group everyone but the
// sender.

import { me } from '../session.js';
import { fetchDetails } from '../model.js';
import { displayName } from '../users.js';
import { clockTime, dayLabel } from '../format.js';
import { $, h } from './dom.js';
import { showDialog, setupDialog } from './dialog.js';
import { snippet, textOf } from './bubble.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */

let shown = /** @type {{c: Conv, m: Message}|null} */ (null);

/** Each member's state for message `seq` of `c`, read first. @param {Conv} c @param {Message} m */
export function memberStates(c, m) {
  const rows = [];
  for (const id of c.memberIds) {
    if (id === m.sender_id) continue;
    const cur = c.cursors.get(id) || { delivered: 0, read: 0 };
    const state = cur.read >= m.seq ? 'Read' : cur.delivered >= m.seq ? 'Delivered' : 'Not delivered yet';
    rows.push({ id, state });
  }
  const order = { Read: 0, Delivered: 1, 'Not delivered yet': 2 };
  return rows.sort((a, b) => order[a.state] - order[b.state] || displayName(a.id).localeCompare(displayName(b.id)));
}

function render() {
  if (!shown) return;
  const { c, m } = shown;
  const body = $('info-body');
  body.replaceChildren();
  const quote = h('p', 'info-text', /** @type {any} */ (m).deleted ? 'This message was deleted' : snippet(textOf(m)));
  quote.dir = 'auto';
  body.append(quote);
  const sent = m.sender_id === me() ? 'You sent it' : `${displayName(m.sender_id)} sent it`;
  body.append(h('p', 'info-sent', `${sent} ${dayLabel(m.sent_at_ms).toLowerCase() === 'today' ? 'today' : `on ${dayLabel(m.sent_at_ms)}`} at ${clockTime(m.sent_at_ms)}.`));
  const list = h('ul', 'info-members');
  list.setAttribute('aria-label', 'Delivery');
  for (const { id, state } of memberStates(c, m)) {
    const li = h('li', `info-member state-${state.split(' ')[0].toLowerCase()}`);
    li.append(h('span', 'info-name', displayName(id)), h('span', 'info-state', state));
    list.append(li);
  }
  if (!list.children.length) list.append(h('li', 'info-member', 'Nobody else is in this chat.'));
  body.append(list);
}

/** Show who has `m`. @param {Conv} c @param {Message} m @param {HTMLElement|null} opener */
export async function openMessageInfo(c, m, opener) {
  shown = { c, m };
  render();
  showDialog(/** @type {HTMLDialogElement} */ ($('info-dialog')), $('info-close'), opener);
  await fetchDetails(c);
  if (shown && shown.m === m) render();
}

/** Wire the dialog (boot). */
export function setupMessageInfo() {
  const dialog = /** @type {HTMLDialogElement} */ ($('info-dialog'));
  setupDialog(dialog);
  dialog.addEventListener('close', () => { shown = null; });
}
