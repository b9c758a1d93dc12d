// The message menu: "Reply", "Edit" (my text messages within the edit
// window), "Delete", "React", "Forward", "Copy", "Info", opened by the
// bubble's "Message actions" button, a right-click or a long press.

import { me } from '../session.js';
import { withinEditWindow } from '../server-limits.js';
import { MEDIA_KINDS } from '../protocol.js';
import { openMenu } from './menu.js';
import { startReply } from './reply.js';
import { startEdit } from './edit-inline.js';
import { openDeleteDialog } from './delete-dialog.js';
import { openReactPicker } from './react-picker.js';
import { openForwardDialog } from './forward-dialog.js';
import { openMessageInfo } from './message-info.js';
import { toast } from './toast.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */
/** @typedef {import('./menu.js').MenuItem} MenuItem */

/** How long a touch must rest on a message to open its menu. */
const LONG_PRESS_MS = 500;

/** Put `text` on the clipboard. @param {string} text */
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard permission (an insecure origin): the old way.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('aria-hidden', 'true');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  toast('Copied.', 'info');
}

/** The menu's items for `m`, as they apply. @param {Conv} c @param {Message} m @param {HTMLElement} opener */
export function menuItems(c, m, opener) {
  const deleted = !!(/** @type {any} */ (m).deleted);
  const el = /** @type {HTMLElement} */ (opener.closest('.msg'));
  /** @type {MenuItem[]} */
  const items = [];
  if (!deleted && !c.left) items.push({ label: 'Reply', run: () => startReply(c, m) });
  // A media message's caption is its text: it can be edited when it has one.
  const editable = m.kind === 'text' || (MEDIA_KINDS.includes(m.kind) && !!m.text);
  if (!deleted && !c.left && m.sender_id === me() && editable && withinEditWindow(m.sent_at_ms || 0)) {
    items.push({ label: 'Edit', run: () => startEdit(el, c, m) });
  }
  items.push({ label: 'Delete', run: () => openDeleteDialog(c, m, opener), danger: true });
  if (!deleted && !c.left) items.push({ label: 'React', run: () => openReactPicker(c, m, opener) });
  if (!deleted) items.push({ label: 'Forward', run: () => openForwardDialog(m, opener) });
  if (!deleted && m.text) items.push({ label: 'Copy', run: () => { copyText(m.text || ''); } });
  items.push({ label: 'Info', run: () => openMessageInfo(c, m, opener) });
  return items;
}

/**
 * Open the menu of message `m` by its button (`at`: where a right-click was).
 * @param {HTMLElement} opener @param {Conv} c @param {Message} m @param {{x: number, y: number}} [at]
 */
export function openMessageMenu(opener, c, m, at) {
  openMenu(opener, 'Message actions', menuItems(c, m, opener), at);
}

/**
 * Right-click and long press inside `container` call `open` with the element
 * under the pointer; it says whether it opened a menu (then the browser's
 * own menu is suppressed).
 * @param {HTMLElement} container @param {(el: HTMLElement, at: {x: number, y: number}) => boolean} open
 */
export function attachMenuGestures(container, open) {
  container.addEventListener('contextmenu', (e) => {
    const t = /** @type {HTMLElement} */ (e.target);
    // Links and the editor keep the browser's menu (copy link, spelling…).
    if (t.closest('a, textarea, .editing')) return;
    if (open(t, { x: e.clientX, y: e.clientY })) e.preventDefault();
  });
  let timer = /** @type {any} */ (null);
  let start = { x: 0, y: 0 };
  const cancel = () => { clearTimeout(timer); timer = null; };
  container.addEventListener('pointerdown', (e) => {
    if (e.pointerType !== 'touch') return;
    const t = /** @type {HTMLElement} */ (e.target);
    if (t.closest('button, a, textarea')) return;
    start = { x: e.clientX, y: e.clientY };
    cancel();
    timer = setTimeout(() => { timer = null; open(t, start); }, LONG_PRESS_MS);
  });
  container.addEventListener('pointermove', (e) => {
    if (timer && Math.hypot(e.clientX - start.x, e.clientY - start.y) > 10) cancel();
  });
  for (const ev of ['pointerup', 'pointercancel', 'scroll']) container.addEventListener(ev, cancel, { passive: true });
}
