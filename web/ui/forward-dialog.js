// "Forward": pick one or more chats (checkboxes named by their titles) and
// send them a copy of the message, flagged forwarded (a photo or file
// reuses its media: nothing is uploaded again).

import { convs, sortedConvs, convTitle, convAvatar } from '../model.js';
import { forward } from '../message-actions.js';
import * as outbox from '../outbox.js';
import { $, h, paintAvatar } from './dom.js';
import { showDialog, hideDialog, setupDialog } from './dialog.js';
import { toast } from './toast.js';

/** @typedef {import('../api.js').Message} Message */

/** The message being forwarded. */
let forwarding = /** @type {Message|null} */ (null);

/** Offer the chats `m` can be forwarded to. @param {Message} m @param {HTMLElement|null} opener */
export function openForwardDialog(m, opener) {
  forwarding = m;
  const list = $('forward-list');
  list.replaceChildren();
  $('forward-error').textContent = '';
  for (const c of sortedConvs(outbox.pendingTimes())) {
    if (c.left) continue;
    const label = h('label', 'forward-item');
    const box = /** @type {HTMLInputElement} */ (h('input'));
    box.type = 'checkbox';
    box.value = c.id;
    const av = h('span', 'avatar small');
    av.setAttribute('aria-hidden', 'true');
    paintAvatar(av, convTitle(c), c.kind === 'group', convAvatar(c));
    const name = h('span', 'forward-title', convTitle(c));
    name.dir = 'auto';
    label.append(box, av, name);
    list.append(label);
  }
  showDialog(/** @type {HTMLDialogElement} */ ($('forward-dialog')), null, opener);
}

/** Wire the dialog (boot). */
export function setupForwardDialog() {
  const dialog = /** @type {HTMLDialogElement} */ ($('forward-dialog'));
  setupDialog(dialog);
  $('forward-send').addEventListener('click', async () => {
    const ids = [...$('forward-list').querySelectorAll('input:checked')].map((el) => /** @type {HTMLInputElement} */ (el).value)
      .filter((id) => convs.has(id));
    if (!ids.length) { $('forward-error').textContent = 'Pick at least one chat.'; return; }
    hideDialog(dialog);
    if (!forwarding) return;
    const n = await forward(forwarding, ids);
    if (n) toast(n === 1 ? 'Forwarded.' : `Forwarded to ${n} chats.`, 'info');
  });
}
