// Comb console: Overview, Search and Stats over the SQL store. Every value from the data is
// put on the page as text (textContent, never innerHTML), so captured attack payloads are
// shown, not run. Every POST carries the session's CSRF token in X-CSRF-Token.
'use strict';

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const user = document.querySelector('meta[name="console-user"]').content;
  const $ = (id) => document.getElementById(id);

  // ---- small helpers -------------------------------------------------------------------
  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
      }
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function asText(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  // ts_ns arrives as text when past 2^53; BigInt keeps its digits.
  function tsMillis(ts) {
    if (ts === null || ts === undefined || ts === '') return null;
    try {
      return Number(BigInt(String(ts).split('.')[0]) / 1000000n);
    } catch (e) {
      return null;
    }
  }

  function formatTs(ts) {
    const ms = tsMillis(ts);
    if (ms === null) return '(no time)';
    return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
  }

  function debounce(fn, ms) {
    let t = null;
    return (...args) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...args), ms);
    };
  }

  async function api(path, body) {
    const opts = {
      method: body === undefined ? 'GET' : 'POST',
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf },
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      return { ok: false, status: 0, data: { error: 'the console did not answer: ' + e.message } };
    }
    let data;
    try {
      data = await res.json();
    } catch (e) {
      data = { error: 'the console answered ' + res.status + ' without JSON' };
    }
    if (res.status === 401) window.location.assign('/login');
    return { ok: res.ok, status: res.status, data };
  }

  // ---- tabs ----------------------------------------------------------------------------
  const tabs = ['overview', 'search', 'stats'];
  function showTab(name) {
    for (const t of tabs) {
      $('tab-' + t).setAttribute('aria-selected', String(t === name));
      $('panel-' + t).hidden = t !== name;
    }
    if (name === 'stats') loadStats();
    if (name === 'overview') loadOverview();
  }
  for (const t of tabs) $('tab-' + t).addEventListener('click', () => showTab(t));

  // ---- shared state --------------------------------------------------------------------
  const state = {
    threshold: 0.5,
    sort: 'ts_ns',
    desc: true,
    search: '',
    filter: null,
    from_ms: 0,
    to_ms: 0,
    offset: 0,
    limit: 50,
    // Keyset paging: the cursor of the page to load ({after: ...} or {before: ...}), given by
    // the page the user left; `offset` only counts rows for the "rows x-y" line. Any page at
    // offset 0 is loaded without a cursor, so every reset of `offset` drops it.
    cursor: null,
    first: null,
    last: null,
  };

  function setThreshold(v) {
    state.threshold = v;
    $('threshold').value = v;
    $('stats-threshold').value = v;
    $('threshold-value').textContent = v.toFixed(2);
    $('stats-threshold-value').textContent = v.toFixed(2);
  }

  // ---- Overview ------------------------------------------------------------------------
  const columns = [
    { key: 'ts_ns', title: 'EntryID (time, UTC)' },
    { key: 'label', title: 'Predicted label' },
    { key: 'rule_label', title: 'Rule label' },
    { key: 'score', title: 'Score' },
    { key: 'model_version', title: 'Model version' },
    { key: 'cs_method', title: 'Method' },
    { key: 'sc_status', title: 'Status' },
    { key: 'cs_uri_stem', title: 'Path' },
    { key: 'c_ip', title: 'Client IP' },
  ];

  function renderHead() {
    const head = $('overview-head');
    clear(head);
    for (const c of columns) {
      const active = state.sort === c.key;
      const th = el('th', { 'data-key': c.key, 'aria-sort': active ? (state.desc ? 'descending' : 'ascending') : 'none' });
      th.appendChild(el('button', {
        type: 'button',
        class: 'sort',
        text: c.title + (active ? (state.desc ? ' \u25bc' : ' \u25b2') : ''),
        onclick: () => {
          if (state.sort === c.key) state.desc = !state.desc;
          else { state.sort = c.key; state.desc = c.key === 'ts_ns' || c.key === 'score'; }
          state.offset = 0;
          loadOverview();
        },
      }));
      head.appendChild(th);
    }
  }

  function cellText(key, v) {
    if (key === 'score' && typeof v === 'number') return v.toFixed(3);
    if ((key === 'label' || key === 'rule_label') && v !== null && v !== undefined)
      return Number(v) === 1 ? 'anomalous (1)' : 'normal (0)';
    return asText(v);
  }

  let overviewSeq = 0;
  async function loadOverview() {
    const seq = ++overviewSeq;
    renderHead();
    const body = {
      threshold: state.threshold, sort: state.sort, desc: state.desc, search: state.search,
      filter: state.filter, from_ms: state.from_ms, to_ms: state.to_ms,
      offset: 0, limit: state.limit,
    };
    if (state.offset > 0 && state.cursor) Object.assign(body, state.cursor);
    else if (state.offset > 0) body.offset = state.offset;
    const r = await api('/api/overview', body);
    if (seq !== overviewSeq) return; // a newer request is on its way
    const tbody = $('overview-body');
    $('overview-error').textContent = '';
    if (!r.ok) {
      $('overview-error').textContent = r.data.error || 'error';
      return;
    }
    const d = r.data;
    clear(tbody);
    if (!d.ready) {
      $('overview-status').textContent = d.message;
      $('overview-sql').textContent = '';
      $('overview-params').textContent = '';
      $('page-info').textContent = '';
      return;
    }
    $('overview-sql').textContent = d.sql;
    $('overview-params').textContent = JSON.stringify(d.params);
    const idx = Object.fromEntries(d.columns.map((c, i) => [c, i]));
    for (const row of d.rows) {
      const tr = el('tr');
      for (const c of columns) {
        const v = row[idx[c.key]];
        const td = el('td', { 'data-key': c.key });
        if (c.key === 'ts_ns') {
          const id = row[idx.request_id];
          td.appendChild(el('button', {
            type: 'button', class: 'entry', text: formatTs(v), title: 'request ' + asText(id),
            onclick: () => openRecord(asText(id)),
          }));
        } else {
          td.textContent = cellText(c.key, v);
          if ((c.key === 'label' || c.key === 'rule_label') && Number(v) === 1) td.className = 'bad';
        }
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    state.first = d.first;
    state.last = d.last;
    const first = d.rows.length ? state.offset + 1 : 0;
    const last = state.offset + d.rows.length;
    const total = d.total_capped ? 'more than ' + d.total.toLocaleString() : d.total.toLocaleString();
    $('page-info').textContent = 'rows ' + first + '\u2013' + last + ' of ' + total;
    $('page-prev').disabled = state.offset === 0;
    $('page-next').disabled = last >= d.total && !d.total_capped;
    $('overview-status').textContent = d.labels_ready ? ''
      : 'no labels yet: the store has no labeled requests, so only threshold 0 shows rows';
  }

  $('threshold').addEventListener('input', (e) => {
    setThreshold(Number(e.target.value));
    debouncedOverview();
  });
  const debouncedOverview = debounce(() => { state.offset = 0; loadOverview(); }, 200);
  $('table-search').addEventListener('input', debounce((e) => {
    state.search = e.target.value;
    state.offset = 0;
    loadOverview();
  }, 250));
  $('overview-refresh').addEventListener('click', () => loadOverview());
  $('page-prev').addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - state.limit);
    state.cursor = state.first ? { before: state.first } : null;
    loadOverview();
  });
  $('page-next').addEventListener('click', () => {
    state.offset += state.limit;
    state.cursor = state.last ? { after: state.last } : null;
    loadOverview();
  });
  $('page-size').addEventListener('change', (e) => {
    state.limit = Number(e.target.value);
    state.offset = 0;
    loadOverview();
  });

  function setRange(fromMs, toMs) {
    state.from_ms = fromMs;
    state.to_ms = toMs;
    state.offset = 0;
    const chip = $('range-chip');
    if (fromMs || toMs) {
      chip.hidden = false;
      $('range-text').textContent = 'time ' + formatTs(BigInt(Math.round(fromMs)) * 1000000n)
        + ' \u2013 ' + formatTs(BigInt(Math.round(toMs)) * 1000000n);
    } else {
      chip.hidden = true;
      $('range-text').textContent = '';
    }
  }
  $('range-clear').addEventListener('click', () => {
    setRange(0, 0);
    $('stats-range').textContent = '';
    loadOverview();
  });

  // ---- advanced filters ----------------------------------------------------------------
  const comparisons = [
    ['=', '='], ['!=', '\u2260'], ['<', '<'], ['<=', '\u2264'], ['>', '>'], ['>=', '\u2265'],
    ['contains', 'contains'], ['not_contains', 'does not contain'],
    ['starts_with', 'starts with'], ['ends_with', 'ends with'],
    ['is_empty', 'is empty'], ['is_not_empty', 'is not empty'],
  ];
  let fieldNames = ['cs_method', 'cs_uri_stem', 'cs_uri_query', 'c_ip', 'sc_status'];
  api('/api/fields').then((r) => {
    if (r.ok) fieldNames = r.data.fields.map((f) => f.name);
    for (const sel of document.querySelectorAll('select.filter-field')) fillFields(sel, sel.value);
  });

  function fillFields(sel, value) {
    clear(sel);
    for (const f of fieldNames) sel.appendChild(el('option', { value: f, text: f }));
    if (value) sel.value = value;
  }

  function addCondition(list, cond) {
    const field = el('select', { class: 'filter-field', 'aria-label': 'field' });
    fillFields(field, (cond && cond.field) || 'cs_uri_stem');
    const cmp = el('select', { class: 'filter-cmp', 'aria-label': 'comparison' });
    for (const [v, t] of comparisons) cmp.appendChild(el('option', { value: v, text: t }));
    cmp.value = (cond && cond.cmp) || 'contains';
    const value = el('input', { class: 'filter-value', 'aria-label': 'value', placeholder: 'value' });
    value.value = (cond && cond.value) || '';
    value.addEventListener('keydown', (e) => { if (e.key === 'Enter') applyFilters(); });
    const row = el('div', { class: 'filter-row' }, [field, cmp, value]);
    row.appendChild(el('button', { type: 'button', class: 'filter-remove', text: 'Remove', onclick: () => row.remove() }));
    list.appendChild(row);
  }

  function addGroup(op) {
    const list = el('div', { class: 'filter-conditions' });
    const opSel = el('select', { class: 'filter-group-op', 'aria-label': 'combine conditions with' });
    opSel.appendChild(el('option', { value: 'and', text: 'AND' }));
    opSel.appendChild(el('option', { value: 'or', text: 'OR' }));
    opSel.value = op || 'and';
    const group = el('fieldset', { class: 'filter-group' }, [
      el('legend', {}, [el('span', { text: 'Conditions combined with ' }), opSel]),
      list,
    ]);
    group.appendChild(el('button', { type: 'button', class: 'filter-add', text: 'Add condition', onclick: () => addCondition(list) }));
    group.appendChild(el('button', { type: 'button', class: 'filter-remove-group', text: 'Remove group', onclick: () => group.remove() }));
    $('filter-groups').appendChild(group);
    addCondition(list);
    return group;
  }

  function readFilters() {
    const groups = [];
    for (const g of $('filter-groups').querySelectorAll('fieldset.filter-group')) {
      const items = [];
      for (const row of g.querySelectorAll('.filter-row')) {
        const cond = {
          field: row.querySelector('.filter-field').value,
          cmp: row.querySelector('.filter-cmp').value,
          value: row.querySelector('.filter-value').value,
        };
        // A condition still waiting for its value is not applied (is empty needs none).
        if (cond.value === '' && cond.cmp !== 'is_empty' && cond.cmp !== 'is_not_empty') continue;
        items.push(cond);
      }
      if (items.length) groups.push({ op: g.querySelector('.filter-group-op').value, items });
    }
    if (!groups.length) return null;
    return { op: $('filter-top-op').value, items: groups };
  }

  function applyFilters() {
    state.filter = readFilters();
    const n = state.filter ? state.filter.items.reduce((a, g) => a + g.items.length, 0) : 0;
    $('filter-count').textContent = n ? '(' + n + ' active)' : '';
    state.offset = 0;
    loadOverview();
    if (!$('panel-stats').hidden) loadStats();
  }
  $('filter-add-group').addEventListener('click', () => addGroup());
  $('filter-apply').addEventListener('click', applyFilters);
  $('filter-clear').addEventListener('click', () => {
    clear($('filter-groups'));
    addGroup();
    applyFilters();
  });
  addGroup();
  for (const v of document.querySelectorAll('.filter-value')) v.value = '';

  // ---- request popup -------------------------------------------------------------------
  async function openRecord(id) {
    const dlg = $('record-dialog');
    const table = $('record-table');
    clear(table);
    $('record-id').textContent = id;
    const r = await api('/api/record', { id });
    if (!r.ok || !r.data.found) {
      table.appendChild(el('tr', {}, [el('td', { text: r.ok ? 'request not found' : r.data.error })]));
    } else {
      table.appendChild(el('tr', {}, [el('th', { text: 'Field' }), el('th', { text: 'Value' })]));
      // Values the SQL store keeps only as a digest (rows over 64 KiB) come with a note: where
      // the bytes are, and whether the server fetched them from the Comb table.
      const notes = new Map((r.data.elided || []).map((n) => [n.field, n]));
      for (const [name, value] of r.data.fields) {
        table.appendChild(el('tr', {}, [el('td', { class: 'name', text: name }), el('td', { class: 'value', text: asText(value) })]));
        const n = notes.get(name);
        if (n)
          table.appendChild(el('tr', { class: 'elided-note' }, [el('td', { class: 'name', text: name + ' (note)' }), el('td', { class: 'value', text: n.text })]));
      }
    }
    if (!dlg.open) dlg.showModal();
  }
  $('record-close').addEventListener('click', () => $('record-dialog').close());

  // ---- Search --------------------------------------------------------------------------
  const historyKey = 'comb-console-history:' + user;
  function loadHistory() {
    try {
      const h = JSON.parse(localStorage.getItem(historyKey) || '[]');
      return Array.isArray(h) ? h.filter((q) => typeof q === 'string').slice(0, 10) : [];
    } catch (e) {
      return [];
    }
  }
  function remember(sql) {
    const h = [sql, ...loadHistory().filter((q) => q !== sql)].slice(0, 10);
    localStorage.setItem(historyKey, JSON.stringify(h));
    renderHistory();
  }
  function renderHistory() {
    const list = $('search-history');
    clear(list);
    for (const q of loadHistory()) {
      list.appendChild(el('li', {}, [el('button', {
        type: 'button', class: 'history-item', text: q, title: 'run again',
        onclick: () => { $('search-sql').value = q; runSearch(); },
      })]));
    }
  }

  async function runSearch() {
    const sql = $('search-sql').value.trim();
    if (!sql) return;
    remember(sql);
    $('search-last').textContent = sql;
    if ($('search-clear').checked) $('search-sql').value = '';
    const table = $('search-table');
    clear(table);
    $('search-status').textContent = 'running\u2026';
    const r = await api('/api/sql', { sql });
    if (!r.ok) {
      $('search-status').textContent = '';
      table.className = 'data error-table';
      table.appendChild(el('tr', {}, [el('th', { text: 'Error' }), el('td', { class: 'search-error', text: r.data.error || 'error' })]));
      table.appendChild(el('tr', {}, [el('th', { text: 'Query' }), el('td', { class: 'search-query', text: r.data.sql || sql })]));
      return;
    }
    const d = r.data;
    table.className = 'data';
    const head = el('tr');
    for (const c of d.columns) head.appendChild(el('th', { text: c }));
    table.appendChild(el('thead', {}, [head]));
    const tbody = el('tbody');
    for (const row of d.rows) {
      const tr = el('tr');
      for (const v of row) tr.appendChild(el('td', { text: asText(v) }));
      tbody.appendChild(tr);
    }
    table.appendChild(tbody);
    $('search-status').textContent = d.rows.length + ' row' + (d.rows.length === 1 ? '' : 's')
      + (d.truncated ? ' (only the first ' + d.max_rows + ' are shown)' : '')
      + ' in ' + d.elapsed_ms.toFixed(1) + ' ms';
  }
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runSearch();
  });
  $('search-sql').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      runSearch();
    }
  });
  renderHistory();

  // ---- Stats ---------------------------------------------------------------------------
  let statsSeq = 0;
  let plotted = false;
  async function loadStats() {
    const seq = ++statsSeq;
    const bucket = $('stats-bucket').value;
    const r = await api('/api/stats', {
      threshold: state.threshold, bucket, filter: state.filter, search: state.search,
    });
    if (seq !== statsSeq) return;
    $('stats-error').textContent = '';
    if (!r.ok) {
      $('stats-error').textContent = r.data.error || 'error';
      return;
    }
    if (!r.data.ready) {
      $('stats-status').textContent = r.data.message;
      return;
    }
    if (typeof Plotly === 'undefined') {
      $('stats-error').textContent = 'plotly.js is not installed on the server (run scripts/setup.sh)';
      return;
    }
    const pts = r.data.points;
    const x = pts.map((p) => new Date(Number(p.t_ms)));
    const total = pts.reduce((a, p) => a + Number(p.anomalies), 0);
    $('stats-status').textContent = total + ' anomalies at threshold ' + state.threshold.toFixed(2)
      + ' in ' + pts.length + ' ' + bucket + (pts.length === 1 ? '' : 's');
    const traces = [
      { x, y: pts.map((p) => p.anomalies), name: 'score \u2265 threshold', type: 'scatter', mode: 'lines+markers',
        hovertemplate: '%{x}<br>%{y} anomalies<extra></extra>' },
      { x, y: pts.map((p) => p.rule), name: 'rule label', type: 'scatter', mode: 'lines+markers',
        line: { dash: 'dot' }, hovertemplate: '%{x}<br>%{y} rule hits<extra></extra>' },
    ];
    const layout = {
      margin: { t: 30, r: 20, b: 50, l: 50 },
      xaxis: { type: 'date', title: { text: 'time (UTC), per ' + bucket } },
      yaxis: { title: { text: 'requests' }, rangemode: 'tozero' },
      dragmode: 'select',
      selectdirection: 'h',
      legend: { orientation: 'h' },
      uirevision: bucket, // keeps zoom and pan across refreshes of the same bucket
    };
    const config = { displaylogo: false, responsive: true,
      toImageButtonOptions: { format: 'png', filename: 'comb-anomalies' } };
    await Plotly.react($('stats-plot'), traces, layout, config);
    if (!plotted) {
      plotted = true;
      const plot = $('stats-plot');
      plot.on('plotly_selected', (ev) => {
        if (!ev || !ev.range || !ev.range.x) return;
        const toMs = (v) => (typeof v === 'number' ? v : Date.parse(String(v).replace(' ', 'T') + 'Z'));
        setRange(toMs(ev.range.x[0]), toMs(ev.range.x[1]));
        $('stats-range').textContent = 'Overview now shows ' + $('range-text').textContent;
        loadOverview();
      });
      plot.on('plotly_deselect', () => {
        setRange(0, 0);
        $('stats-range').textContent = '';
        loadOverview();
      });
    }
  }
  $('stats-bucket').addEventListener('change', loadStats);
  $('stats-threshold').addEventListener('input', (e) => {
    setThreshold(Number(e.target.value));
    debouncedStats();
  });
  const debouncedStats = debounce(() => { loadStats(); state.offset = 0; }, 200);
  // New traffic keeps arriving: the plot follows it while it is shown, except while a brushed
  // range is selected (a redraw would take the analyst's selection box away).
  setInterval(() => {
    if (!$('panel-stats').hidden && !document.hidden && !state.from_ms && !state.to_ms) loadStats();
  }, 10000);

  setThreshold(state.threshold);
  loadOverview();
})();
