// Editing a message in place: its text becomes a text box with "Save" and
// "Cancel" (Enter saves, Shift+Enter is a new line, Escape cancels); the
// bubble shows the new text with "edited" once the server took it.

import { editMessage } from '../message-actions.js';
import { byteLength } from '../format.js';
import { maxTextBytes } from '../server-limits.js';
import { h, autoGrow } from './dom.js';
import { scheduleRender } from './refresh.js';
import { toast } from './toast.js';

/** @typedef {import('../api.js').Message} Message */
/** @typedef {import('../model.js').Conv} Conv */

/**
 * Turn the bubble `el` of message `m` into an editor.
 * @param {HTMLElement} el @param {Conv} c @param {Message} m
 */
export function startEdit(el, c, m) {
  if (el.classList.contains('editing')) return;
  const body = /** @type {HTMLElement} */ (el.querySelector('.body'));
  el.classList.add('editing');
  const form = /** @type {HTMLFormElement} */ (h('form', 'edit-form'));
  const box = /** @type {HTMLTextAreaElement} */ (h('textarea', 'edit-box'));
  box.value = m.text || '';
  box.dir = 'auto';
  box.rows = 1;
  box.setAttribute('aria-label', 'Edit message');
  const actions = h('div', 'edit-actions');
  const cancel = /** @type {HTMLButtonElement} */ (h('button', 'btn ghost small', 'Cancel'));
  cancel.type = 'button';
  const save = /** @type {HTMLButtonElement} */ (h('button', 'btn primary small', 'Save'));
  save.type = 'submit';
  actions.append(cancel, save);
  form.append(box, actions);
  body.replaceChildren(form);
  const opener = /** @type {HTMLElement|null} */ (el.querySelector('.msg-actions-btn'));
  const finish = () => {
    el.classList.remove('editing');
    /** @type {any} */ (el)._key = ''; // the next render rebuilds the body
    scheduleRender();
    if (opener) opener.focus({ preventScroll: true });
  };
  cancel.addEventListener('click', finish);
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); finish(); }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  box.addEventListener('input', () => autoGrow(box));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = box.value.replace(/\s+$/, '');
    if (!text.trim() || text === m.text) { finish(); return; }
    if (byteLength(text) > maxTextBytes()) { toast(`That’s too long: at most ${maxTextBytes()} bytes.`, 'warn'); return; }
    save.disabled = true;
    await editMessage(c, m.seq, text);
    finish();
  });
  autoGrow(box);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}
