// The "Settings" dialog. Its sections are one list (SECTIONS), each building
// its own part: Profile (photo, display name), Privacy (last seen, read receipts),
// Notifications (desktop notifications, message previews, sounds), Appearance (theme) and Linked devices (log another device out). A new
// section (notifications, say) is one more entry.

import { ApiError } from '../api.js';
import { profile, loadProfile, setDisplayName, setAvatar, updateAccountSettings, revokeDevice, currentDeviceId } from '../profile.js';
import { avatarPicker } from './avatar-picker.js';
import { DISPLAY_NAME_MAX_CHARS } from '../protocol.js';
import { errorText } from '../format.js';
import { $, h } from './dom.js';
import { showDialog, setupDialog } from './dialog.js';
import { currentTheme, applyTheme } from './theme.js';
import { notificationsOn, setNotifications, soundsOn, setSounds } from '../notify.js';

/** @typedef {import('../profile.js').Me} Me */
/** @typedef {{id: string, title: string, build: (box: HTMLElement, me: Me) => void}} Section */

/** Numbers the ids the sections give their labels. */
let serial = 0;

/** Say what went wrong (or clear it). @param {unknown} [e] */
function showError(e) {
  $('settings-error').textContent = e ? errorText(e instanceof ApiError ? e.code : 'internal') : '';
}

/**
 * A radio group named `name` with one radio per option; `onPick` runs with
 * the chosen value.
 * @param {string} name @param {{value: string, label: string}[]} options @param {string} current
 * @param {(value: string, el: HTMLInputElement) => void} onPick
 */
function radioGroup(name, options, current, onPick) {
  const id = `settings-label-${++serial}`;
  const group = h('div', 'settings-radios');
  group.setAttribute('role', 'radiogroup');
  group.setAttribute('aria-labelledby', id);
  const label = h('span', 'settings-label', name);
  label.id = id;
  group.append(label);
  for (const o of options) {
    const row = h('label', 'settings-choice');
    const input = /** @type {HTMLInputElement} */ (h('input'));
    input.type = 'radio';
    input.name = id;
    input.value = o.value;
    input.checked = o.value === current;
    input.addEventListener('change', () => { if (input.checked) onPick(o.value, input); });
    row.append(input, h('span', '', o.label));
    group.append(row);
  }
  return group;
}

/** A checkbox with its label and a line saying what it does. @param {string} name @param {string} hint @param {boolean} checked @param {(on: boolean, el: HTMLInputElement) => void} onChange */
function checkbox(name, hint, checked, onChange) {
  const row = h('div', 'settings-check');
  // The label holds only the name (its accessible name); the hint describes it.
  const label = h('label', 'settings-choice');
  const input = /** @type {HTMLInputElement} */ (h('input'));
  input.type = 'checkbox';
  input.checked = checked;
  const hintEl = h('span', 'settings-hint', hint);
  hintEl.id = `settings-hint-${++serial}`;
  input.setAttribute('aria-describedby', hintEl.id);
  input.addEventListener('change', () => onChange(input.checked, input));
  label.append(input, h('span', '', name));
  row.append(label, hintEl);
  return row;
}

/** @type {Section[]} */
const SECTIONS = [
  {
    id: 'profile',
    title: 'Profile',
    build(box, me) {
      const form = /** @type {HTMLFormElement} */ (h('form', 'inline-form'));
      const field = h('label', 'field');
      const input = /** @type {HTMLInputElement} */ (h('input'));
      input.id = 'settings-display-name';
      input.type = 'text';
      input.maxLength = DISPLAY_NAME_MAX_CHARS;
      input.autocomplete = 'name';
      input.value = me.display_name || me.username;
      field.append(h('span', '', 'Display name'), input);
      const save = /** @type {HTMLButtonElement} */ (h('button', 'btn secondary', 'Save'));
      save.type = 'submit';
      const note = h('p', 'settings-hint', `Others see this name. Your username is ${me.username}.`);
      const status = h('p', 'settings-status');
      status.id = 'settings-name-status';
      status.setAttribute('role', 'status');
      form.append(field, save);
      box.append(avatarPicker({
        what: 'profile', name: me.display_name || me.username, mediaId: me.avatar_media_id || '', save: setAvatar,
      }), form, note, status);
      form.addEventListener('submit', (e) => { e.preventDefault(); saveName(); });
      input.addEventListener('change', () => saveName());
    },
  },
  {
    id: 'privacy',
    title: 'Privacy',
    build(box, me) {
      box.append(radioGroup('Last seen', [
        { value: 'everyone', label: 'Everyone' }, { value: 'nobody', label: 'Nobody' },
      ], me.presence_visibility, (value) => changeAccount({ presence_visibility: value === 'nobody' ? 'nobody' : 'everyone' })));
      box.append(checkbox('Read receipts',
        'When off, others don’t see when you’ve read their messages, and you don’t see theirs.',
        me.read_receipts, (on, el) => changeAccount({ read_receipts: on }, () => { el.checked = !on; })));
    },
  },
  {
    id: 'notifications',
    title: 'Notifications',
    build(box, me) {
      // Permission is asked here, when the user switches it on — never on load.
      box.append(checkbox('Notifications',
        'Desktop notifications for new messages while Parley is in the background (muted chats stay silent).',
        notificationsOn(), async (on, el) => {
          el.disabled = true;
          const now = await setNotifications(on).catch(() => false);
          el.checked = now;
          el.disabled = false;
          $('settings-error').textContent = on && !now ? 'Notifications are blocked in this browser’s site settings.' : '';
        }));
      box.append(checkbox('Message previews',
        'Show the sender and text in notifications; when off they only say “New message”.',
        me.push_previews, (on, el) => changeAccount({ push_previews: on }, () => { el.checked = !on; })));
      box.append(checkbox('Sounds', 'A short sound for a new message while Parley is in the background.',
        soundsOn(), (on) => setSounds(on)));
    },
  },
  {
    id: 'appearance',
    title: 'Appearance',
    build(box) {
      box.append(radioGroup('Theme', [
        { value: 'system', label: 'System' }, { value: 'light', label: 'Light' }, { value: 'dark', label: 'Dark' },
      ], currentTheme(), (value) => applyTheme(value === 'light' || value === 'dark' ? value : 'system', true)));
    },
  },
  {
    id: 'devices',
    title: 'Linked devices',
    build(box, me) {
      const list = h('ul', 'device-list');
      list.setAttribute('aria-label', 'Linked devices');
      const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
      for (const d of me.devices) {
        const li = h('li', 'device');
        const info = h('span', 'device-info');
        info.append(h('span', 'device-name', d.device_name || 'Unnamed device'));
        const since = d.created_at_ms ? `Logged in ${dateFmt.format(new Date(d.created_at_ms))}` : '';
        const current = d.device_id === currentDeviceId();
        info.append(h('span', 'settings-hint', current ? `This device${since ? ` · ${since}` : ''}` : since));
        li.append(info);
        if (!current) {
          const btn = /** @type {HTMLButtonElement} */ (h('button', 'btn danger small', 'Log out'));
          btn.type = 'button';
          btn.addEventListener('click', async () => {
            btn.disabled = true;
            try {
              await revokeDevice(d.device_id);
              li.remove();
              showError();
            } catch (e) {
              btn.disabled = false;
              showError(e);
            }
          });
          li.append(btn);
        }
        list.append(li);
      }
      box.append(list);
    },
  },
];

/** Save the display name when it changed. */
async function saveName() {
  const input = /** @type {HTMLInputElement|null} */ (document.getElementById('settings-display-name'));
  const me = profile();
  if (!input || !me) return;
  const name = input.value.trim();
  const status = $('settings-name-status');
  if (!name) { status.textContent = 'A display name can’t be empty.'; return; }
  if (name === me.display_name) return;
  try {
    await setDisplayName(name);
    status.textContent = 'Saved.';
    showError();
  } catch (e) {
    showError(e);
  }
}

/** @param {{presence_visibility?: 'everyone'|'nobody', read_receipts?: boolean, push_previews?: boolean}} change @param {() => void} [undo] */
async function changeAccount(change, undo) {
  try {
    await updateAccountSettings(change);
    showError();
  } catch (e) {
    if (undo) undo();
    showError(e);
  }
}

/** Build the sections for `me`. @param {Me} me */
function render(me) {
  const box = $('settings-sections');
  box.replaceChildren();
  for (const s of SECTIONS) {
    const section = h('section', 'settings-section');
    const title = h('h3', '', s.title);
    title.id = `settings-${s.id}`;
    section.setAttribute('aria-labelledby', title.id);
    section.append(title);
    s.build(section, me);
    box.append(section);
  }
}

/** Open the dialog (with what the server says about me now). */
export async function openSettings() {
  const dialog = /** @type {HTMLDialogElement} */ ($('settings-dialog'));
  showError();
  const known = profile();
  if (known) render(known);
  else $('settings-sections').replaceChildren(h('p', 'settings-hint', 'Loading…'));
  showDialog(dialog, /** @type {HTMLElement} */ (dialog.querySelector('[data-close]')));
  try {
    const me = await loadProfile();
    // Don't rebuild under the user's hands if they started changing things.
    if (dialog.open && (!known || !dialog.contains(document.activeElement) || document.activeElement === dialog.querySelector('[data-close]'))) {
      render(me);
    }
  } catch (e) {
    showError(e);
  }
}

/** Wire the dialog (boot). */
export function setupSettings() {
  const dialog = /** @type {HTMLDialogElement} */ ($('settings-dialog'));
  setupDialog(dialog);
  // A name typed and not yet saved is saved on the way out.
  dialog.addEventListener('close', () => { saveName(); });
}
