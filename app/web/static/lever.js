/*! Lever snippet, ES2017, no dependencies: see README "Snippet" */
((w, d) => {
  if (w.lever && w.lever.refresh) return;
  const nav = navigator, loc = location, me = d.currentScript, cfg = (me && me.dataset) || {},
    P = 'data-lever-', EXP = P + 'experiment', STATE = P + 'state', VAR = P + 'variant', GOAL = '[' + P + 'goal]',
    KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/, EVENT = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/,
    api = (cfg.api || (me && me.src ? me.src.replace(/[?#].*/, '').replace(/\/[^/]*$/, '') : loc.origin)).replace(/\/+$/, ''),
    timeout = cfg.timeout && isFinite(cfg.timeout) ? +cfg.timeout : 800,
    required = cfg.consent == 'required',
    blocked = nav.globalPrivacyControl === true || nav.doNotTrack == '1' || w.doNotTrack == '1',
    queued = Array.isArray(w.lever) ? w.lever : [],
    // maps keyed by names from the page: no prototype, so 'constructor' is just a name
    dict = () => Object.create(null),
    noop = () => {},
    // after the document is parsed, so that every experiment on the page goes in one request
    later = f => d.readyState == 'loading' ? d.addEventListener('DOMContentLoaded', f) : Promise.resolve().then(f),
    auto = ' ' + (cfg.auto || '') + ' ', on_ = k => auto.indexOf(' ' + k + ' ') >= 0,
    pageCtx = {}, handlers = dict(), history = [];
  // rec (kept): id, n visits, t last seen; l, r, u: landing path, referrer, utm of the visit; c consent; o opt-out;
  // a: '$' + experiment key -> its latest assignment token;
  // k the visitor_token of the last assign answer (signed for id: lets this page send the visitor's events)
  // q: events waiting to be sent; seen: the URL of the last page_view; shown: since when the page is visible
  let rec = {}, touched, cache = dict(), results = dict(), pending = dict(), style, q = [], timer, seen,
    shown = d.visibilityState == 'visible' ? Date.now() : 0;

  const call = (fn, arg) => { try { fn(arg); } catch (e) {} },
    all = (sel, el) => Array.from((el || d).querySelectorAll(sel)),
    own = (el, sel) => all(sel, el).filter(e => e.closest('[' + EXP + ']') == el),
    attr = (e, name) => e.getAttribute(name),
    allowed = () => !blocked && !rec.o && (!required || rec.c == 1),
    rid = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), b => (b | 256).toString(16).slice(1)).join(''),
    store = () => w.localStorage,
    cookie = () => {
      try { return decodeURIComponent(d.cookie.match(/(?:^|;\s*)lever=([^;]*)|$/)[1] || '') || null; } catch (e) { return null; }
    },
    read = () => {
      let s = null;
      try { s = store().getItem('lever'); } catch (e) {}
      try {
        const r = JSON.parse(s || cookie());
        return r && typeof r == 'object' ? r : {};
      } catch (e) { return {}; }
    },
    // localStorage, else a first-party cookie; true when kept
    write = r => {
      const s = r ? JSON.stringify(r) : null;
      let ok;
      try {
        s ? store().setItem('lever', s) : store().removeItem('lever');
        ok = store().getItem('lever') === s;
      } catch (e) {}
      try {
        if (!ok || cookie()) {
          d.cookie = 'lever=' + (ok ? '' : encodeURIComponent(s || '')) + ';path=/;SameSite=Lax;max-age=' +
            (ok || !s ? 0 : 31536000) + (loc.protocol == 'https:' ? ';Secure' : '');
          ok = ok || cookie() === s;
        }
      } catch (e) {}
      return ok;
    },
    // the visitor id, counting the visit once per page; '' when it cannot be kept
    visitor = () => {
      if (!touched) {
        const now = Date.now(), q = new URLSearchParams(loc.search), u = {};
        let ref = '';
        try { ref = new URL(d.referrer).hostname; } catch (e) {}
        if (ref == loc.hostname) ref = '';
        'source medium campaign term content'.split(' ').forEach(k => { if (q.get('utm_' + k)) u['utm_' + k] = q.get('utm_' + k); });
        if (!rec.id) rec = Object.assign(rec, {id: rid(), n: 0});
        // a new visit after 30 idle minutes: count it, note where it landed and came from
        if (!(now - rec.t < 18e5)) Object.assign(rec, {n: (rec.n || 0) + 1, l: loc.pathname, r: '', u: 0});
        if (ref) rec.r = ref;
        if (Object.keys(u)[0]) rec.u = u;
        rec.t = now;
        touched = write(rec);
      }
      return touched ? rec.id : '';
    },
    // automatic context, the page's first; flat values within the server's limits
    context = ctx => {
      const t = new Date(), n = rec.n || 1, ua = nav.userAgent, out = dict();
      let count = 0;
      [ctx, pageCtx, Object.assign({
        device: /iPad|Tablet|Kindle|Silk\/|Android(?!.*Mobi)/i.test(ua) || (/Mac/.test(ua) && nav.maxTouchPoints > 1)
          ? 'tablet' : /Mobi|iP(hone|od)|Opera Mini/i.test(ua) ? 'mobile' : 'desktop',
        hour: t.getHours(), weekday: (t.getDay() + 6) % 7, tz_offset: t.getTimezoneOffset(), language: nav.language,
        referrer: rec.r || '', landing_path: rec.l || loc.pathname, path: loc.pathname, visits: n - 1, returning: n > 1
      }, rec.u)].forEach(src => Object.keys(src && typeof src == 'object' ? src : {}).forEach(k => {
        let v = src[k];
        const type = typeof v;
        if (type == 'string') v = v.slice(0, 200);
        else if (!(type == 'number' ? isFinite(v) : type == 'boolean' || v === null)) return;
        if (k && !(k in out) && count < 50 && k.length < 65) out[k] = v, count++;
      }));
      return out;
    },
    // a beacon outlives the page; a string body is text/plain (no preflight)
    beacon = (path, body) => {
      try {
        if (!nav.sendBeacon(api + path, body)) throw 0;
      } catch (e) {
        fetch(api + path, {method: 'POST', body, keepalive: true, credentials: 'omit'}).catch(noop);
      }
    },
    // the queue waits for a visitor_token; 100 events per request is the server's limit
    send = () => {
      clearTimeout(timer);
      timer = 0;
      if (!allowed()) q = [];
      while (rec.k && q.length) beacon('/api/v1/events', JSON.stringify({visitor: rec.id, visitor_token: rec.k, events: q.splice(0, 100)}));
    },
    // a random event_id unless given: a retried event counts once
    track = (name, value, opt) => {
      const v = value == null ? 1 : +value, id = opt && opt.event_id != null ? opt.event_id + '' : rid();
      if (!allowed() || typeof name != 'string' || !EVENT.test(name) || !isFinite(v) || !visitor()) return false;
      q.push({name, value: v, event_id: id});
      q.length >= 20 ? send() : timer || (timer = setTimeout(send, 2e3));
      emit('track', {name, value: v, event_id: id});
      return true;
    },
    // visible seconds since the page was last shown, when it is hidden or left
    hide = () => {
      if (shown && on_('dwell')) track('dwell', Math.round(Date.now() - shown) / 1e3);
      shown = 0;
      send();
    },
    emit = (type, data) => {
      history.push([type, data]);
      (handlers[type] || []).slice().forEach(fn => call(fn, data));
    },
    // late listeners get the events they missed (lever.js loads async)
    on = (type, fn) => {
      (handlers[type] = handlers[type] || []).push(fn);
      history.forEach(h => { if (h[0] == type) call(fn, h[1]); });
      return () => { handlers[type] = handlers[type].filter(f => f != fn); };
    },
    settle = (key, done, a, reason) => {
      const res = a ? Object.assign({payload: {}}, a, {assignment: undefined, fallback: false})
        : {experiment: key, variant: null, payload: {}, fallback: true, reason};
      results[key] = {token: a && a.assignment, reason: res.reason};
      // the latest assignment token per experiment (20 kept), for rewards on pages without it
      if (a && a.assignment && touched) {
        const m = rec.a = rec.a || {}, k = '$' + key;
        delete m[k];
        m[k] = a.assignment;
        if (Object.keys(m).length > 20) delete m[Object.keys(m)[0]];
        write(rec);
      }
      done(res);
      emit(a ? 'assign' : 'fallback', res);
    },
    request = (items, ctx) => {
      const id = visitor(), ctl = w.AbortController && new AbortController(),
        finish = (list, reason) => {
          clearTimeout(timer);
          if (items) items.forEach(([key, done]) => settle(key, done, list && list.find(a => a.experiment == key), reason));
          items = 0;
        },
        timer = setTimeout(() => {
          finish(0, 'timeout');
          if (ctl) ctl.abort();
        }, timeout),
        // a string body is sent as text/plain: a simple request, no CORS preflight
        go = keys => fetch(api + '/api/v1/assign', {
          method: 'POST', credentials: 'omit', cache: 'no-store', signal: ctl && ctl.signal,
          body: JSON.stringify({experiments: keys, visitor: id, context: context(ctx)})
        }).then(r => r.json().then(b => {
          if (r.ok) {
            if (id == rec.id && b.visitor_token) rec.k = b.visitor_token, write(rec), send();
            return finish(b.assignments, 'missing');
          }
          // an unknown or forbidden experiment fails the batch: ask again without it
          const m = r.status < 500 && /experiment '?([a-z0-9_-]+)'?$/.exec(b.error.message),
            rest = keys.filter(k => !m || k != m[1]);
          rest.length && rest.length < keys.length ? go(rest) : finish(0, 'error');
        })).catch(() => finish(0, 'error'));
      try {
        id ? go(items.map(it => it[0])) : finish(0, 'storage');
      } catch (e) { finish(0, 'error'); }
    },
    flush = () => {
      const groups = pending;
      pending = dict();
      for (const k in groups) {
        for (let i = 0, items = groups[k].items; i < items.length; i += 20) request(items.slice(i, i + 20), groups[k].ctx);
      }
    },
    // asked for together: one request (per distinct context)
    assign = (key, ctx) => cache[key += ''] || (cache[key] = new Promise(done => {
      let k = '{}';
      if (!KEY.test(key) || !allowed()) return settle(key, done, 0, KEY.test(key) ? 'consent' : 'invalid');
      try { k = JSON.stringify(ctx || {}); } catch (e) { ctx = 0; }
      if (!Object.keys(pending).length) later(flush);
      (pending[k] = pending[k] || {ctx, items: []}).items.push([key, done]);
    })),
    render = (el, res) => {
      const vs = own(el, '[' + VAR + ']'), want = res.variant, name = e => attr(e, VAR),
        hit = vs.some(e => name(e) === want), def = vs.find(e => name(e) == 'control') || vs[0];
      vs.forEach(e => { e.hidden = hit ? name(e) !== want : e != def; });
      if (!res.fallback) {
        own(el, '[' + P + 'field]').forEach(e => {
          const v = res.payload[attr(e, P + 'field')];
          if (typeof v == 'string' || typeof v == 'number') e.textContent = v;
        });
        el.setAttribute(P + 'served', want);
      }
      el.setAttribute(STATE, res.fallback ? 'fallback' : 'assigned');
    },
    // a page_view per page, and per URL a single-page app refreshes for
    refresh = () => (on_('pageview') && seen != loc.href && track('page_view') && (seen = loc.href), Promise.all(all('[' + EXP + ']:not([' + STATE + '])').map(el => {
      let ctx = 0;
      try { ctx = JSON.parse(attr(el, P + 'context')); } catch (e) {}
      return assign(attr(el, EXP), ctx).then(res => {
        try { render(el, res); } catch (e) { el.setAttribute(STATE, 'fallback'); }
      });
    })).then(noop)),
    reward = (key, value) => {
      const v = value == null ? 1 : +value, r = results[key];
      const t = r ? r.token : rec.a && rec.a['$' + key];
      if (!allowed() || !KEY.test(key) || !t || !isFinite(v)) return false;
      beacon('/api/v1/reward', JSON.stringify({assignment: t, value: v, event_id: rid()}));
      emit('reward', {experiment: key, value: v});
      return true;
    },
    goal = el => {
      const value = attr(el, P + 'value');
      attr(el, P + 'goal').split(/[\s,]+/).forEach(key => reward(key, value ? parseFloat(value) : 1));
    },
    consent = yes => {
      if (yes && !blocked) {
        delete rec.o;
        rec.c = 1;
        // with storage blocked, consent lasts for this page
        write(rec);
        for (const key in results) if (results[key].reason == 'consent') delete cache[key];
        all('[' + EXP + '][' + STATE + '=fallback]').forEach(el => { if (!cache[attr(el, EXP)]) el.removeAttribute(STATE); });
        refresh();
      } else if (!yes) {
        // forget the visitor; without required consent, remember the opt-out
        rec = required ? {} : {o: 1};
        write(required ? 0 : rec);
        cache = dict();
        results = dict();
        touched = 0;
        q = [];
      }
      return allowed();
    },
    lever = {
      assign, reward, track, consent, on, refresh,
      context: ctx => { Object.assign(pageCtx, ctx); return lever; },
      push: fn => call(fn, lever)
    };

  try {
    rec = read();
    style = d.createElement('style');
    style.nonce = (me && me.nonce) || '';
    style.textContent = '[' + EXP + ']:not([' + STATE + ']){visibility:hidden}[' + VAR + '][hidden]{display:none!important}';
    (d.head || d.documentElement).appendChild(style);
    w.lever = lever;
    d.addEventListener('click', e => {
      const el = e.target.closest && e.target.closest(GOAL);
      if (el && el.tagName != 'FORM') goal(el);
    }, true);
    d.addEventListener('submit', e => { if (e.target.matches(GOAL)) goal(e.target); }, true);
    if (on_('clicks')) d.addEventListener('click', e => {
      const el = e.target.closest && e.target.closest('[' + P + 'track]'), v = el && attr(el, P + 'value');
      if (el) track(attr(el, P + 'track') || 'click', v ? parseFloat(v) : 1);
    }, true);
    d.addEventListener('visibilitychange', () => d.visibilityState == 'visible' ? shown = shown || Date.now() : hide());
    w.addEventListener('pagehide', hide);
    if (allowed() && rec.id) visitor();
    lever.ready = new Promise(resolve => later(() => resolve(refresh())));
    queued.forEach(lever.push);
  } catch (e) {
    // never leave the page hidden
    if (style) style.remove();
    all('[' + EXP + ']').forEach(el => el.setAttribute(STATE, 'fallback'));
  }
})(window, document);
