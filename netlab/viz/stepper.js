// The HTML stepper (netlab/viz/html.py inlines it into each page): Next/Previous and
// the arrow keys step through the hops of the chosen path; the panel shows the hop, the
// diagram highlights where it happened.
(function () {
  const data = JSON.parse(document.getElementById('trace-data').textContent);
  const legSelect = document.getElementById('leg');
  const prev = document.getElementById('prev'), next = document.getElementById('next');
  const hopBox = document.getElementById('hop'), list = document.getElementById('hops');
  const position = document.getElementById('position'), ending = document.getElementById('ending');
  let leg = 0, index = 0;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  data.legs.forEach((l, i) => legSelect.appendChild(el('option', {value: i}, l.title)));

  function headers(step) {
    const table = el('table', {class: 'headers'});
    table.appendChild(el('caption', {}, 'Packet here: ' + step.summary));
    const changed = step.changed || {};
    const rows = Object.entries(step.packet);
    const ether = step.encap ? 'outer ether' : 'ether';
    if (step.ether) rows.unshift([ether + ' src', step.ether.src || '?'], [ether + ' dst', step.ether.dst || '?']);
    for (const [name, value] of rows) {
      const tr = el('tr', name in changed ? {class: 'changed'} : {});
      tr.appendChild(el('th', {scope: 'row'}, name));
      const td = el('td', {}, String(value));
      if (name in changed) td.appendChild(el('span', {class: 'was'}, ' (was ' + changed[name] + ', rewritten here)'));
      tr.appendChild(td);
      table.appendChild(tr);
    }
    if (step.encap) {
      const o = step.encap.outer || {};
      const tr = el('tr');
      tr.appendChild(el('th', {scope: 'row'}, step.encap.type || 'tunnel'));
      tr.appendChild(el('td', {}, 'vni ' + step.encap.vni + ', outer udp ' + o.src + ':' + o.sport + ' > ' + o.dst + ':' + o.dport));
      table.appendChild(tr);
    }
    return table;
  }

  function highlight(id) {
    document.querySelectorAll('#diagram g.current').forEach(g => g.classList.remove('current'));
    if (!id) return;
    const g = document.getElementById(id);
    if (g) g.classList.add('current');
  }

  function show() {
    const l = data.legs[leg], step = l.steps[index];
    if (!step) { hopBox.textContent = 'This path has no hops.'; prev.disabled = next.disabled = true; return; }
    legSelect.value = String(leg);
    position.textContent = 'Hop ' + (index + 1) + ' of ' + l.steps.length;
    prev.disabled = index === 0;
    next.disabled = index === l.steps.length - 1;
    hopBox.className = 'tone-' + step.tone;
    hopBox.replaceChildren();
    hopBox.appendChild(el('h2', {}, step.n + '. ' + step.event + (step.dev ? ' [' + step.dev + ']' : '')));
    hopBox.appendChild(el('p', {class: 'where'}, 'at ' + step.where));
    if (step.table || step.chain) {
      const rule = el('div', {class: 'rule', 'data-chain': (step.table || '') + ' ' + (step.chain || '')});
      rule.appendChild(el('div', {class: 'chain'}, 'table ' + (step.table || '?') + ', chain ' + (step.chain || '?')));
      if (step.rule) rule.appendChild(el('code', {class: 'rule-text'}, step.rule));
      if (step.action) rule.appendChild(el('div', {class: 'tag tone-' + step.tone}, '→ ' + step.action.toUpperCase()));
      hopBox.appendChild(rule);
    }
    hopBox.appendChild(el('p', {class: 'explain'}, step.detail));
    hopBox.appendChild(headers(step));
    list.querySelectorAll('button').forEach((b, i) => {
      if (i === index) b.setAttribute('aria-current', 'step'); else b.removeAttribute('aria-current');
    });
    const current = list.querySelector('[aria-current="step"]');
    if (current) {          // keep the current hop in view inside the list, not the page
      const top = current.offsetTop, bottom = top + current.offsetHeight;
      if (top < list.scrollTop || bottom > list.scrollTop + list.clientHeight)
        list.scrollTop = Math.max(0, top - list.clientHeight / 2);
    }
    highlight(step.element);
    document.body.dataset.element = step.element || '';
  }

  function chooseLeg(i) {
    leg = i; index = 0;
    const l = data.legs[leg];
    list.replaceChildren();
    l.steps.forEach((s, i) => {
      const li = el('li');
      const b = el('button', {type: 'button', class: 'tone-' + s.tone}, s.n + '. ' + s.where + ' — ' + s.event + (s.chain ? ' ' + s.table + ' ' + s.chain : ''));
      b.addEventListener('click', () => { index = i; show(); });
      li.appendChild(b);
      list.appendChild(li);
    });
    ending.replaceChildren(...l.ending.map(t => el('p', {}, t)));
    show();
  }

  if (!data.legs.length) {
    document.querySelector('.controls').hidden = true;
    hopBox.textContent = 'No trace on this page: draw one with --from NS --to IP.';
    return;
  }
  prev.addEventListener('click', () => { if (index > 0) { index--; show(); } });
  next.addEventListener('click', () => { if (index < data.legs[leg].steps.length - 1) { index++; show(); } });
  legSelect.addEventListener('change', () => chooseLeg(Number(legSelect.value)));
  document.addEventListener('keydown', e => {
    if (e.target === legSelect || e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'ArrowRight') { next.click(); e.preventDefault(); }
    else if (e.key === 'ArrowLeft') { prev.click(); e.preventDefault(); }
    else if (e.key === 'Home') { index = 0; show(); e.preventDefault(); }
    else if (e.key === 'End') { index = data.legs[leg].steps.length - 1; show(); e.preventDefault(); }
  });
  chooseLeg(0);
})();
