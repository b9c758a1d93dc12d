// The colour theme: "System" follows the device's light/dark setting,
// "Light" and "Dark" force one. Kept in this browser (not per account) and
// applied before anything is drawn; the stylesheet picks its colours from
// the root's `color-scheme` (CSS `light-dark()`).

import * as store from '../store.js';

/** @typedef {'system'|'light'|'dark'} Theme */

/** The theme chosen here. @returns {Theme} */
export function currentTheme() { return store.loadTheme(); }

/** Apply `theme` to the page (and remember it when `save`). @param {Theme} theme */
export function applyTheme(theme, save = false) {
  if (save) store.saveTheme(theme);
  const root = document.documentElement;
  if (theme === 'system') delete root.dataset.theme; else root.dataset.theme = theme;
}
