// Painting the whole signed-in screen from the state modules: the list, the
// tab title, the open chat and the group panel. Registers the painters with
// `ui/refresh.js`, through which every state change asks for a repaint.

import { currentSession } from '../session.js';
import { setPainters } from './refresh.js';
import { renderList, renderTitle, renderBanner } from './sidebar.js';
import { renderHeader, renderComposer } from './chat.js';
import { renderMessages } from './messages.js';
import { isGroupPanelOpen, renderGroupPanel } from './group-panel.js';

/** @param {{stickToBottom?: boolean}} [opts] */
function renderAll(opts = {}) {
  if (!currentSession()) return;
  renderList();
  renderTitle();
  renderHeader();
  renderMessages(opts);
  renderComposer();
  if (isGroupPanelOpen()) renderGroupPanel();
}

/** Make `scheduleRender` and friends paint (boot). */
export function installPainters() {
  setPainters({ all: renderAll, header: renderHeader, banner: renderBanner });
}
