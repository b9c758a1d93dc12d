// Toasts: short-lived notices in the corner (errors as alerts, info as status).

import { $, h } from './dom.js';

/** @param {string} text @param {'error'|'warn'|'info'} [kind] */
export function toast(text, kind = 'error') {
  const box = $('toasts');
  for (const el of box.children) if (el.textContent === text) return;
  const el = h('div', `toast ${kind}`, text);
  el.setAttribute('role', kind === 'info' ? 'status' : 'alert');
  box.append(el);
  setTimeout(() => { el.classList.add('leaving'); setTimeout(() => el.remove(), 300); }, 6000);
}
