// Small DOM helpers shared by the UI sections: element lookup and creation,
// avatars (initials, and the photo when there is one), busy forms, the
// growing composer, and the phone layout's list/chat switch. No state of
// their own.

import { initials, hueFor } from '../format.js';
import { mediaUrl, cachedMediaUrl } from '../media.js';

/** The element with this id (the page's fixed skeleton is in index.html). @param {string} id */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @param {string} tag @param {string} [cls] @param {string} [text] */
export function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * An avatar: the initials of `name` on its colour, and over them the photo
 * `mediaId` (a profile or group photo) once its URL is known. A photo the
 * server will not show me leaves the initials. Repainting the same avatar
 * changes nothing (lists repaint often).
 * @param {HTMLElement} el @param {string} name @param {boolean} [group] @param {string} [mediaId]
 */
export function paintAvatar(el, name, group = false, mediaId = '') {
  el.classList.toggle('group', group);
  const key = `${name}\u0001${mediaId || ''}`;
  if (/** @type {any} */ (el)._avatar === key) return;
  /** @type {any} */ (el)._avatar = key;
  el.textContent = initials(name);
  el.style.setProperty('--hue', String(hueFor(name)));
  if (!mediaId) return;
  const show = (/** @type {string|null} */ url) => {
    if (!url || /** @type {any} */ (el)._avatar !== key) return;
    const img = /** @type {HTMLImageElement} */ (h('img', 'avatar-img'));
    img.alt = '';
    img.decoding = 'async';
    img.addEventListener('error', () => img.remove());
    img.src = url;
    el.append(img);
  };
  const now = cachedMediaUrl(mediaId, 's');
  if (now) show(now); else mediaUrl(mediaId, 's').then(show);
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
