/*! Lever snippet: assigns variants, reports goals. No dependencies, ES2017. */
(function (w, d) {
  'use strict';
  if (w.lever && w.lever.refresh) return; // included twice

  var nav = navigator;
  var me = d.currentScript;
  var cfg = (me && me.dataset) || {};
  var queued = Array.isArray(w.lever) ? w.lever : [];
  var NAME = 'lever';
  var EXP = 'data-lever-experiment';
  var STATE = 'data-lever-state';
  var KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  var VISIT_MS = 30 * 60 * 1000; // a visit ends after 30 idle minutes
  var noop = function () {};
  // API base: data-api, else the directory lever.js was served from
  var api = (cfg.api || (me && me.src ? me.src.replace(/[?#].*$/, '').replace(/\/[^/]*$/, '') : location.origin))
    .replace(/\/+$/, '');
  var timeout = cfg.timeout && isFinite(cfg.timeout) ? +cfg.timeout : 800;
  var required = cfg.consent === 'required';
  // Global Privacy Control and Do Not Track: nothing is stored or sent, whatever consent() says
  var blocked = nav.globalPrivacyControl === true || nav.doNotTrack === '1' || nav.doNotTrack === 'yes' ||
    w.doNotTrack === '1';

  var rec;                 // stored record: id, n (visits), t (last seen), l, r, u (visit source), c, o, tk
  var touched = false;     // visit counted on this page
  var dict = function () { return Object.create(null); }; // keys come from the page: no prototype
  var cache = dict();      // experiment -> Promise of its result
  var results = dict();    // experiment -> {token, reason}
  var pending = dict();    // context JSON -> {ctx, items}
  var scheduled = false;
  var pageCtx = {};
  var handlers = dict();
  var history = [];
  var style;

  function call(fn, arg) {
    try { return fn(arg); } catch (e) { /* a page's handler must not break the snippet */ }
  }

  function own(el, selector) {
    return Array.from(el.querySelectorAll(selector)).filter(function (e) { return e.closest('[' + EXP + ']') === el; });
  }

  function all(selector) { return Array.from(d.querySelectorAll(selector)); }

  function rid() {
    var a = new Uint8Array(16);
    try { crypto.getRandomValues(a); } catch (e) { for (var i = 0; i < 16; i++) a[i] = Math.random() * 256; }
    return Array.from(a, function (b) { return (b | 256).toString(16).slice(1); }).join('');
  }

  // -- storage: localStorage, else a first-party cookie; nothing is written without consent --

  function cookie() {
    try {
      var m = d.cookie.match(/(?:^|;\s*)lever=([^;]+)/);
      return m ? decodeURIComponent(m[1]) : null;
    } catch (e) { return null; }
  }

  function read() {
    var s = null;
    try { s = w.localStorage.getItem(NAME); } catch (e) { /* blocked */ }
    try {
      var r = JSON.parse(s == null ? cookie() : s);
      return r && typeof r == 'object' ? r : {};
    } catch (e) { return {}; }
  }

  function write(r) {
    var s = r ? JSON.stringify(r) : null, ok = false, c = '';
    try {
      if (s) w.localStorage.setItem(NAME, s); else w.localStorage.removeItem(NAME);
      ok = w.localStorage.getItem(NAME) === s;
    } catch (e) { /* blocked */ }
    if (r && !ok) c = JSON.stringify(Object.assign({}, r, {tk: undefined}));
    if (c || cookie() != null) {
      try {
        d.cookie = NAME + '=' + encodeURIComponent(c) + ';path=/;SameSite=Lax;max-age=' + (c ? 31536000 : 0) +
          (location.protocol == 'https:' ? ';Secure' : '');
      } catch (e) { /* blocked */ }
      if (c) ok = nav.cookieEnabled !== false && cookie() === c;
    }
    return ok;
  }

  function allowed() { return !blocked && !rec.o && (!required || rec.c === 1); }

  function host() {
    try {
      var h = new URL(d.referrer).hostname;
      return h != location.hostname ? h : '';
    } catch (e) { return ''; }
  }

  function utm() {
    var q = new URLSearchParams(location.search), u = {}, any = false;
    ['source', 'medium', 'campaign', 'term', 'content'].forEach(function (k) {
      var v = q.get('utm_' + k);
      if (v) { u['utm_' + k] = v; any = true; }
    });
    return any && u;
  }

  // The visitor id (kept), counting the visit once per page; '' when it cannot be kept.
  function visitor() {
    if (!touched) {
      var now = Date.now(), ref = host(), u = utm();
      if (!rec.id) { rec.id = rid(); rec.n = 0; }
      if (!(now - rec.t < VISIT_MS)) {
        rec.n = (rec.n || 0) + 1;
        rec.l = location.pathname;
        rec.r = ref;
        rec.u = u || undefined;
      } else {
        if (ref) rec.r = ref;
        if (u) rec.u = u;
      }
      rec.t = now;
      touched = write(rec);
    }
    return touched ? rec.id : '';
  }

  // -- context -------------------------------------------------------------------------

  function device() {
    var ua = nav.userAgent || '';
    if (/iPad|Tablet|Kindle|Silk\/|PlayBook|Android(?!.*Mobi)/i.test(ua) || (/Macintosh/.test(ua) && nav.maxTouchPoints > 1)) {
      return 'tablet';
    }
    return /Mobi|iPhone|iPod|Android|Opera Mini|IEMobile|BlackBerry|webOS/i.test(ua) ? 'mobile' : 'desktop';
  }

  function auto() {
    var t = new Date(), n = rec.n || 1;
    return Object.assign({
      device: device(), hour: t.getHours(), weekday: (t.getDay() + 6) % 7, tz_offset: t.getTimezoneOffset(),
      language: nav.language || '', referrer: rec.r || '', landing_path: rec.l || location.pathname,
      path: location.pathname, visits: n - 1, returning: n > 1
    }, rec.u);
  }

  // Flat values within the server's limits: <= 50 keys, strings <= 200 characters.
  function context(ctx) {
    var out = dict(), n = 0;
    [ctx, pageCtx, auto()].forEach(function (src) {
      Object.keys(src && typeof src == 'object' ? src : {}).forEach(function (k) {
        var v = src[k], t = typeof v;
        if (k in out || n >= 50 || k.length > 64) return;
        if (t == 'string') v = v.slice(0, 200);
        else if (!(t == 'number' ? isFinite(v) : t == 'boolean' || v === null)) return;
        out[k] = v;
        n++;
      });
    });
    return out;
  }

  // -- events ----------------------------------------------------------------------------

  function emit(type, data) {
    history.push([type, data]);
    (handlers[type] || []).slice().forEach(function (fn) { call(fn, data); });
  }

  function on(type, fn) {
    (handlers[type] = handlers[type] || []).push(fn);
    history.forEach(function (h) { if (h[0] == type) call(fn, h[1]); }); // replay for late listeners
    return function () { handlers[type] = handlers[type].filter(function (f) { return f !== fn; }); };
  }

  // -- assignment --------------------------------------------------------------------------

  function settle(item, a, reason) {
    var res = a ? {experiment: item.key, variant: a.variant, payload: a.payload || {}, holdout: a.holdout,
      status: a.status, sticky: a.sticky, fallback: false}
      : {experiment: item.key, variant: null, payload: {}, fallback: true, reason: reason || 'unavailable'};
    results[item.key] = {token: a && a.assignment, reason: res.reason};
    if (a && a.assignment && allowed()) {
      var tk = rec.tk = Object.assign({}, rec.tk);
      delete tk[item.key];
      tk[item.key] = a.assignment;
      Object.keys(tk).slice(0, -20).forEach(function (k) { delete tk[k]; });
    }
    item.done(res);
    emit(a ? 'assign' : 'fallback', res);
  }

  function request(items, ctx) {
    var id = visitor(), over = false, ctl = w.AbortController && new AbortController(), timer;
    if (!id) return items.forEach(function (it) { settle(it, null, 'storage'); });
    function finish(list, reason) {
      if (over) return;
      over = true;
      clearTimeout(timer);
      items.forEach(function (it) {
        settle(it, list && list.filter(function (a) { return a.experiment === it.key; })[0], reason);
      });
      if (list && allowed()) write(rec); // keep the tokens for goals on later pages
    }
    timer = setTimeout(function () {
      finish(null, 'timeout');
      if (ctl) ctl.abort();
    }, timeout);
    (function go(keys) {
      try {
        fetch(api + '/api/v1/assign', {
          method: 'POST', credentials: 'omit', cache: 'no-store', signal: ctl && ctl.signal,
          body: JSON.stringify({experiments: keys, visitor: id, context: context(ctx)}) // text/plain: no preflight
        }).then(function (r) {
          return r.json().then(function (b) {
            if (r.ok) return finish(b.assignments || [], 'missing');
            // one unknown or forbidden experiment fails the batch: retry without it
            var m = r.status < 500 && /experiment '?([a-z0-9][a-z0-9_-]*)'?$/.exec((b && b.error && b.error.message) || '');
            var rest = keys.filter(function (k) { return !m || k !== m[1]; });
            if (rest.length && rest.length < keys.length) go(rest);
            else finish(null, 'error');
          });
        }).catch(function () { finish(null, 'error'); });
      } catch (e) { finish(null, 'error'); }
    })(items.map(function (it) { return it.key; }));
  }

  function flush() {
    var groups = pending;
    pending = dict();
    scheduled = false;
    Object.keys(groups).forEach(function (k) {
      var items = groups[k].items;
      for (var i = 0; i < items.length; i += 20) request(items.slice(i, i + 20), groups[k].ctx); // server batch limit
    });
  }

  function assign(key, ctx) {
    key = String(key);
    if (cache[key]) return cache[key];
    return (cache[key] = new Promise(function (done) {
      var item = {key: key, done: done}, k;
      if (!KEY.test(key)) return settle(item, null, 'invalid');
      if (!allowed()) return settle(item, null, 'consent');
      try { k = JSON.stringify(ctx || {}); } catch (e) { k = '{}'; ctx = null; }
      (pending[k] = pending[k] || {ctx: ctx, items: []}).items.push(item);
      if (!scheduled) {
        scheduled = true;
        Promise.resolve().then(flush);
      }
    }));
  }

  // -- declarative markup ------------------------------------------------------------------

  function render(el, res) {
    var vs = own(el, '[data-lever-variant]'), want = res.variant;
    var name = function (e) { return e.getAttribute('data-lever-variant'); };
    var hit = vs.some(function (e) { return name(e) === want; });
    var def = vs.filter(function (e) { return name(e) == 'control'; })[0] || vs[0];
    vs.forEach(function (e) { e.hidden = hit ? name(e) !== want : e !== def; });
    if (!res.fallback) {
      own(el, '[data-lever-field]').forEach(function (e) {
        var v = res.payload[e.getAttribute('data-lever-field')];
        if (typeof v == 'string' || typeof v == 'number') e.textContent = v;
      });
      el.setAttribute('data-lever-served', want);
    }
    el.setAttribute(STATE, res.fallback ? 'fallback' : 'assigned');
  }

  function fallback(el) { el.setAttribute(STATE, 'fallback'); }

  function refresh() {
    return Promise.all(all('[' + EXP + ']:not([' + STATE + '])').map(function (el) {
      var ctx = null;
      try { ctx = JSON.parse(el.getAttribute('data-lever-context')); } catch (e) { /* not JSON: ignored */ }
      return assign(el.getAttribute(EXP), ctx).then(function (res) {
        try { render(el, res); } catch (e) { fallback(el); }
      });
    })).then(noop);
  }

  // -- rewards -------------------------------------------------------------------------

  function send(body) {
    var url = api + '/api/v1/reward', data = JSON.stringify(body);
    try { if (nav.sendBeacon && nav.sendBeacon(url, data)) return; } catch (e) { /* fall through */ }
    try { fetch(url, {method: 'POST', body: data, keepalive: true, credentials: 'omit'}).catch(noop); } catch (e) { /* gone */ }
  }

  function reward(key, value) {
    var v = value == null ? 1 : +value, r = results[key], tk = Object(rec.tk)[key], body;
    if (!allowed() || !KEY.test(key) || !isFinite(v)) return false;
    if (r) {
      if (!r.token) return false; // this page showed the fallback, or the experiment is not running
      body = {assignment: r.token};
    } else if (typeof tk == 'string') body = {assignment: tk};
    else if (rec.id) body = {experiment: key, visitor: rec.id};
    else return false;
    body.value = v;
    body.event_id = rid(); // retries of this event are counted once
    send(body);
    emit('reward', {experiment: key, value: v});
    return true;
  }

  function goal(el) {
    var value = el.getAttribute('data-lever-value');
    el.getAttribute('data-lever-goal').split(/[\s,]+/).forEach(function (key) {
      if (key) reward(key, value == null || value === '' ? 1 : parseFloat(value));
    });
  }

  // -- consent -------------------------------------------------------------------------

  function consent(yes) {
    if (yes && !blocked) {
      delete rec.o;
      rec.c = 1;
      write(rec); // if storage is blocked, consent lasts for this page only
      all('[' + EXP + '][' + STATE + '="fallback"]').forEach(function (el) {
        var key = el.getAttribute(EXP), r = results[key];
        if (r && r.reason == 'consent') { delete cache[key]; el.removeAttribute(STATE); }
      });
      Object.keys(results).forEach(function (key) { if (results[key].reason == 'consent') delete cache[key]; });
      refresh();
    } else if (!yes) {
      rec = required ? {} : {o: 1}; // opt-out: forget the visitor, remember only the refusal
      write(required ? null : rec);
      cache = dict();
      results = dict();
      touched = false;
    }
    return allowed();
  }

  var lever = {
    assign: assign,
    reward: reward,
    consent: consent,
    on: on,
    refresh: refresh,
    context: function (ctx) { Object.assign(pageCtx, ctx); return lever; },
    push: function (fn) { call(fn, lever); },
    ready: null
  };

  try {
    rec = read();
    style = d.createElement('style');
    if (me && me.nonce) style.nonce = me.nonce;
    style.textContent = '[' + EXP + ']:not([' + STATE + ']){visibility:hidden}[data-lever-variant][hidden]{display:none!important}';
    (d.head || d.documentElement).appendChild(style);
    w.lever = lever;
    d.addEventListener('click', function (e) {
      var el = e.target && e.target.closest && e.target.closest('[data-lever-goal]');
      if (el && el.tagName != 'FORM') goal(el);
    }, true);
    d.addEventListener('submit', function (e) {
      if (e.target.matches && e.target.matches('[data-lever-goal]')) goal(e.target);
    }, true);
    if (allowed() && rec.id) visitor(); // count the visit on pages without experiments too
    queued.forEach(lever.push);
    lever.ready = new Promise(function (resolve) {
      if (d.readyState == 'loading') d.addEventListener('DOMContentLoaded', function () { resolve(refresh()); });
      else resolve(refresh());
    });
  } catch (e) {
    // never leave the page hidden: show every experiment's markup as authored
    if (style && style.parentNode) style.parentNode.removeChild(style);
    try { all('[' + EXP + ']').forEach(fallback); } catch (e2) { /* nothing more to do */ }
  }
})(window, document);
