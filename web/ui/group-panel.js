// The group panel: whether it is open, the member list with each member's
// presence or last seen and admin actions (make/dismiss admin, remove),
// the group photo, renaming, adding members and leaving.

import { ApiError } from '../api.js';
import { api, me } from '../session.js';
import { openConv, fetchDetails, isAdmin, convTitle } from '../model.js';
import { catchUp } from '../history.js';
import { displayName, resolveUsernames, knownUser, avatarOf } from '../users.js';
import { errorText, parseUsernames, presenceText } from '../format.js';
import * as link from '../link.js';
import { presenceOf } from '../presence.js';
import { $, h, busy, paintAvatar } from './dom.js';
import { scheduleRender } from './refresh.js';
import { confirmAction } from './confirm.js';
import { attachSuggestions } from './suggest.js';
import { avatarPicker } from './avatar-picker.js';

let panelOpen = false;

export function isGroupPanelOpen() { return panelOpen; }

export function setupGroupPanel() {
  $('group-info-button').addEventListener('click', () => {
    if (panelOpen) closeGroupPanel({ restoreFocus: true }); else openGroupPanel();
  });
  $('group-panel-close').addEventListener('click', () => closeGroupPanel({ restoreFocus: true }));

  const renameForm = /** @type {HTMLFormElement} */ ($('rename-form'));
  renameForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = openConv();
    const input = /** @type {HTMLInputElement} */ ($('rename-input'));
    const name = input.value.trim();
    if (!c || !name) return;
    await groupAction(renameForm, async () => {
      await api.renameGroup(c.id, name);
      c.name = name;
      input.value = '';
    });
  });

  attachSuggestions(/** @type {HTMLInputElement} */ ($('add-members-input')), {
    multi: true,
    exclude: () => new Set(openConv()?.memberIds || []),
  });
  const addForm = /** @type {HTMLFormElement} */ ($('add-members-form'));
  addForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const c = openConv();
    const input = /** @type {HTMLInputElement} */ ($('add-members-input'));
    const names = parseUsernames(input.value);
    if (!c || !names.length) return;
    await groupAction(addForm, async () => {
      const found = await resolveUsernames(names);
      if (!found.ids) { $('group-panel-error').textContent = found.error; return; }
      await api.addMembers(c.id, found.ids);
      input.value = '';
      await fetchDetails(c);
    });
  });

  $('member-rows').addEventListener('click', async (e) => {
    const c = openConv();
    const roleBtn = /** @type {HTMLElement|null} */ (/** @type {HTMLElement} */ (e.target).closest('[data-role]'));
    if (roleBtn && c) {
      const uid = roleBtn.dataset.user || '';
      const role = roleBtn.dataset.role === 'admin' ? 'admin' : 'member';
      await groupAction(null, async () => {
        await api.setRole(c.id, uid, role);
        c.roles.set(uid, role);
        await fetchDetails(c);
      });
      return;
    }
    const btn = /** @type {HTMLElement} */ (e.target).closest('[data-remove]');
    if (!btn || !c) return;
    const uid = /** @type {HTMLElement} */ (btn).dataset.remove || '';
    const ok = await confirmAction({
      title: `Remove ${displayName(uid)}?`,
      text: `${displayName(uid)} will no longer get the messages of “${convTitle(c)}”.`,
      action: 'Remove',
    });
    if (!ok || openConv() !== c) return;
    await groupAction(null, async () => {
      await api.removeMember(c.id, uid);
      c.memberIds = c.memberIds.filter((x) => x !== uid);
      c.roles.delete(uid);
      await fetchDetails(c);
    });
  });

  $('leave-group-button').addEventListener('click', async () => {
    const c = openConv();
    if (!c) return;
    const ok = await confirmAction({
      title: `Leave “${convTitle(c)}”?`,
      text: 'You will stop getting its messages. Only an admin can add you back.',
      action: 'Leave group',
    });
    if (!ok || openConv() !== c) return;
    await groupAction(null, async () => {
      await api.removeMember(c.id, me());
      c.left = true;
      closeGroupPanel();
    });
  });
}

/** The group photo setting (admins), rebuilt for another group or name (it keeps its own photo state between). @param {import('../model.js').Conv} c @param {boolean} admin */
function renderGroupPhoto(c, admin) {
  const box = $('group-photo');
  const key = admin ? `${c.id}\u0001${convTitle(c)}` : '';
  if (/** @type {any} */ (box)._key === key) return;
  /** @type {any} */ (box)._key = key;
  box.replaceChildren();
  if (!admin) return;
  box.append(avatarPicker({
    what: 'group', name: convTitle(c), group: true, mediaId: c.avatarMediaId,
    save: async (mediaId) => {
      await api.setGroupAvatar(c.id, mediaId);
      c.avatarMediaId = mediaId;
      scheduleRender();
    },
  }));
}

/** @param {HTMLFormElement|null} form @param {() => Promise<void>} fn */
async function groupAction(form, fn) {
  const err = $('group-panel-error');
  err.textContent = '';
  if (form) busy(form, true);
  try {
    await fn();
  } catch (ex) {
    err.textContent = errorText(ex instanceof ApiError ? ex.code : 'internal', { context: 'group' });
  } finally {
    if (form) busy(form, false);
    // The system message of our own action is not pushed to this device
    // (the server skips the acting device): fetch it.
    const c = openConv();
    if (c && c.historyLoaded) catchUp(c);
    scheduleRender();
  }
}

function openGroupPanel() {
  panelOpen = true;
  $('group-panel').hidden = false;
  $('group-info-button').setAttribute('aria-expanded', 'true');
  $('group-panel-error').textContent = '';
  const c = openConv();
  if (c) fetchDetails(c);
  renderGroupPanel();
  // Focus moves into the panel, and back to "Group info" when it closes.
  /** @type {HTMLElement} */ ($('group-panel-close')).focus();
}

/** @param {{restoreFocus?: boolean}} [opts] restoreFocus: the user closed it, focus goes back to "Group info" */
export function closeGroupPanel(opts = {}) {
  const wasOpen = panelOpen;
  panelOpen = false;
  $('group-panel').hidden = true;
  $('group-info-button').setAttribute('aria-expanded', 'false');
  if (wasOpen && opts.restoreFocus) {
    const btn = /** @type {HTMLElement} */ ($('group-info-button'));
    if (!btn.hidden) btn.focus();
  }
}

export function renderGroupPanel() {
  const c = openConv();
  if (!c || c.kind !== 'group') { closeGroupPanel(); return; }
  const admin = isAdmin(c) && !c.left;
  for (const el of document.querySelectorAll('#group-panel .admin-only')) /** @type {HTMLElement} */ (el).hidden = !admin;
  $('leave-group-button').hidden = c.left;
  renderGroupPhoto(c, admin);
  const ids = [...c.memberIds].sort((a, b) => (a === me() ? -1 : b === me() ? 1 : displayName(a).localeCompare(displayName(b))));
  $('member-count').textContent = `${ids.length} member${ids.length === 1 ? '' : 's'}`;
  const rows = $('member-rows');
  rows.replaceChildren();
  for (const id of ids) {
    const row = h('div', 'member-row');
    const name = displayName(id);
    const av = h('span', 'avatar small');
    av.setAttribute('aria-hidden', 'true');
    paintAvatar(av, name, false, avatarOf(id));
    const info = h('div', 'member-info');
    info.append(h('span', 'member-name', id === me() ? `${name} (you)` : name));
    // A chosen display name: the username says who it is.
    const known = knownUser(id);
    if (known && known.username && known.username !== name) info.append(h('span', 'member-username', `@${known.username}`));
    const isAdminMember = c.roles.get(id) === 'admin';
    if (isAdminMember) info.append(h('span', 'role-badge', 'admin'));
    const seen = id === me() ? (link.state() === 'open' ? 'online' : '') : presenceText(presenceOf(id));
    if (seen) info.append(h('span', `member-presence${seen === 'online' ? ' is-online' : ''}`, seen));
    row.append(av, info);
    if (admin && id !== me()) {
      const actions = h('div', 'member-actions');
      // Visible text and accessible name are the same words.
      const roleBtn = h('button', 'btn ghost small', isAdminMember ? `Dismiss ${name} as admin` : `Make ${name} an admin`);
      roleBtn.type = 'button';
      roleBtn.dataset.role = isAdminMember ? 'member' : 'admin';
      roleBtn.dataset.user = id;
      const btn = h('button', 'btn ghost small danger-text', 'Remove');
      btn.type = 'button';
      btn.dataset.remove = id;
      btn.setAttribute('aria-label', `Remove ${name}`);
      actions.append(roleBtn, btn);
      row.append(actions);
    }
    rows.append(row);
  }
}
