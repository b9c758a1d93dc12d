// The chat header's "Chat options" menu: Mute/Unmute, Pin/Unpin,
// Archive/Unarchive, and in a direct chat Block/Unblock, as they apply; and
// the header's "Muted" mark.

import { openConv, otherMember, isMuted } from '../model.js';
import { updateChatSettings, isBlocked, setBlocked } from '../chat-settings.js';
import { $ } from './dom.js';
import { openMenu } from './menu.js';

/** @typedef {import('./menu.js').MenuItem} MenuItem */
/** @typedef {import('../model.js').Conv} Conv */

/** The options that apply to `c` now. @param {Conv} c @returns {MenuItem[]} */
export function chatOptions(c) {
  /** @type {MenuItem[]} */
  const items = [];
  items.push(isMuted(c)
    ? { label: 'Unmute', run: () => updateChatSettings(c, { muted_until_ms: 0 }) }
    : { label: 'Mute', run: () => updateChatSettings(c, { muted_until_ms: -1 }) });
  items.push(c.pinned
    ? { label: 'Unpin', run: () => updateChatSettings(c, { pinned: false }) }
    : { label: 'Pin', run: () => updateChatSettings(c, { pinned: true }) });
  items.push(c.archived
    ? { label: 'Unarchive', run: () => updateChatSettings(c, { archived: false }) }
    : { label: 'Archive', run: () => updateChatSettings(c, { archived: true }) });
  const other = c.kind === 'direct' ? otherMember(c) : null;
  if (other) {
    items.push(isBlocked(other)
      ? { label: 'Unblock', run: () => setBlocked(other, false) }
      : { label: 'Block', run: () => setBlocked(other, true), danger: true });
  }
  return items;
}

/** The header's marks for the open chat. */
export function renderChatOptions() {
  const c = openConv();
  $('chat-muted').hidden = !c || !isMuted(c);
}

/** Wire the header button (boot). */
export function setupChatOptions() {
  const btn = $('chat-options-button');
  btn.addEventListener('click', () => {
    const c = openConv();
    if (c) openMenu(btn, 'Chat options', chatOptions(c));
  });
}
