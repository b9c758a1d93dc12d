// Small DOM helpers shared by the UI sections: element lookup and creation,
// avatars, busy forms, the growing composer, and the phone layout's
// list/chat switch. No state of their own.

import { initials, hueFor } from '../format.js';

/** The element with this id (the page's fixed skeleton is in index.html). @param {string} id */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @param {string} tag @param {string} [cls] @param {string} [text] */
export function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** @param {HTMLElement} el @param {string} name */
export function paintAvatar(el, name, group = false) {
  el.textContent = initials(name);
  el.style.setProperty('--hue', String(hueFor(name)));
  el.classList.toggle('group', group);
}

/** @param {HTMLFormElement} form @param {boolean} on */
export function busy(form, on) {
  form.querySelectorAll('button').forEach((b) => { b.disabled = on; });
  if (on) form.setAttribute('aria-busy', 'true'); else form.removeAttribute('aria-busy');
}

/** @param {HTMLTextAreaElement} el */
export function autoGrow(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight, 160)}px`;
}

/** On phones, go back from the chat to the list. */
export function showSidebar() {
  $('app-view').classList.remove('chat-open');
}
