// Pop-up menus (the message menu, the chat options): one `role="menu"` at a
// time next to the button that opened it, arrow keys, Home/End and typing a
// letter move between items, Enter/Space run one, Escape or a click outside
// close it, and focus goes back to the opener.

import { h } from './dom.js';

/** @typedef {{label: string, run: () => void, danger?: boolean}} MenuItem */

/** The open menu, if any. */
let current = /** @type {{el: HTMLElement, opener: HTMLElement|null}|null} */ (null);

/** Close the open menu; focus goes back to its opener unless `restoreFocus` is false. */
export function closeMenu(restoreFocus = true) {
  if (!current) return;
  const { el, opener } = current;
  current = null;
  el.remove();
  if (opener) opener.setAttribute('aria-expanded', 'false');
  document.removeEventListener('pointerdown', onOutside, true);
  if (restoreFocus && opener && opener.isConnected) opener.focus({ preventScroll: true });
}

/** @param {Event} e */
function onOutside(e) {
  if (current && !current.el.contains(/** @type {Node} */ (e.target))) closeMenu(false);
}

/** @param {KeyboardEvent} e */
function onKey(e) {
  if (!current) return;
  const items = /** @type {HTMLElement[]} */ ([...current.el.querySelectorAll('[role="menuitem"]')]);
  const i = items.indexOf(/** @type {HTMLElement} */ (document.activeElement));
  let to = -1;
  if (e.key === 'ArrowDown') to = (i + 1) % items.length;
  else if (e.key === 'ArrowUp') to = (i - 1 + items.length) % items.length;
  else if (e.key === 'Home') to = 0;
  else if (e.key === 'End') to = items.length - 1;
  else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeMenu(); return; }
  else if (e.key === 'Tab') { closeMenu(false); return; }
  else if (e.key.length === 1 && /\S/.test(e.key)) {
    const k = e.key.toLowerCase();
    const n = items.length;
    for (let j = 1; j <= n; j++) {
      const it = items[(i + j) % n];
      if ((it.textContent || '').trim().toLowerCase().startsWith(k)) { to = (i + j) % n; break; }
    }
  }
  if (to < 0) return;
  e.preventDefault();
  items[to].focus();
}

/**
 * Open a menu of `items` by `opener` (or at a point, for a right-click).
 * @param {HTMLElement} opener @param {string} label the menu's name
 * @param {MenuItem[]} items @param {{x: number, y: number}} [at]
 */
export function openMenu(opener, label, items, at) {
  closeMenu(false);
  const el = h('div', 'menu');
  el.setAttribute('role', 'menu');
  el.setAttribute('aria-label', label);
  for (const item of items) {
    const btn = /** @type {HTMLButtonElement} */ (h('button', `menu-item${item.danger ? ' danger-text' : ''}`, item.label));
    btn.type = 'button';
    btn.setAttribute('role', 'menuitem');
    btn.tabIndex = -1;
    btn.addEventListener('click', () => {
      closeMenu(false);
      item.run();
    });
    el.append(btn);
  }
  el.addEventListener('keydown', onKey);
  // Inside the opener's landmark (or dialog), so the menu belongs to a region.
  (opener.closest('main, aside, dialog') || document.body).append(el);
  current = { el, opener };
  opener.setAttribute('aria-expanded', 'true');
  place(el, opener, at);
  document.addEventListener('pointerdown', onOutside, true);
  const first = /** @type {HTMLElement|null} */ (el.querySelector('[role="menuitem"]'));
  if (first) first.focus({ preventScroll: true });
}

/** Put the menu by its opener (or the point), inside the window. @param {HTMLElement} el @param {HTMLElement} opener @param {{x: number, y: number}} [at] */
function place(el, opener, at) {
  const r = opener.getBoundingClientRect();
  const w = el.offsetWidth;
  const hgt = el.offsetHeight;
  let x = at ? at.x : r.right - w;
  let y = at ? at.y : r.bottom + 4;
  if (x + w > innerWidth - 8) x = innerWidth - w - 8;
  if (y + hgt > innerHeight - 8) y = Math.max(8, (at ? at.y : r.top) - hgt - 4);
  el.style.left = `${Math.max(8, x)}px`;
  el.style.top = `${Math.max(8, y)}px`;
}

/** Whether a menu is open. */
export function isMenuOpen() { return !!current; }
