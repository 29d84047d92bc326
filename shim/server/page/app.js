// ctpshim serve's web page: a quote board and a chart over /md/, an account panel over /td/,
// both in the webctp JSON protocol.  Plain JavaScript, no build step, no network beyond this host.
"use strict";

(() => {
  const $ = (selector, root = document) => root.querySelector(selector);
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // ---------------------------------------------------------------- numbers
  // webctp sends a missing price (CTP's DBL_MAX) as 0; other fields may carry DBL_MAX itself.
  const hasPrice = (value) => typeof value === "number" && Number.isFinite(value) && value !== 0 && Math.abs(value) < 1e300;
  const hasNumber = (value) => typeof value === "number" && Number.isFinite(value) && Math.abs(value) < 1e300;
  const decimalsOf = (value) => {
    const text = Number(value.toFixed(6)).toString();
    const dot = text.indexOf(".");
    return dot < 0 ? 0 : Math.min(4, text.length - dot - 1);
  };
  const fixed = (value, decimals) => value.toFixed(decimals);
  const grouped = (value) => {
    const [whole, fraction] = String(value).split(".");
    const sign = whole.startsWith("-") ? "-" : "";
    const digits = sign ? whole.slice(1) : whole;
    const withCommas = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return sign + withCommas + (fraction !== undefined ? "." + fraction : "");
  };
  const money = (value) => (hasNumber(value) ? grouped(value.toFixed(2)) : "-");
  const splitIds = (text) => [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
  const validId = (id) => /^[A-Za-z0-9._-]{1,80}$/.test(id);

  // ---------------------------------------------------------------- sockets
  const pageQuery = new URLSearchParams(location.search);
  const socketUrl = (path) => {
    const query = new URLSearchParams();
    for (const key of ["token", "source"]) if (pageQuery.get(key)) query.set(key, pageQuery.get(key));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const text = query.toString();
    return `${scheme}//${location.host}${path}${text ? "?" + text : ""}`;
  };

  const recent = [];  // the last messages other than ticks, for the console: ctpshimPage.messages()

  // A WebSocket that reconnects after a drop (1 s, doubling to 10 s) and answers homalos' Ping.
  class Link {
    constructor(name, path, handlers) {
      this.name = name;
      this.path = path;
      this.handlers = handlers;
      this.ws = null;
      this.delay = 1000;
      this.opened = 0;     // connections that reached "open"
      this.failures = 0;   // connection attempts in a row that never opened
      this.requestId = 1;
      this.suspended = false;
      this.timer = 0;
      this.connect();
    }
    connect() {
      this.setState("connecting");
      let ws;
      try {
        ws = new WebSocket(socketUrl(this.path));
      } catch (error) {
        this.retry();
        return;
      }
      this.ws = ws;
      let wasOpen = false;
      ws.onopen = () => {
        wasOpen = true;
        this.opened += 1;
        this.failures = 0;
        this.delay = 1000;
        this.setState("open");
        this.handlers.open();
      };
      ws.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch (error) {
          console.warn(`${this.name}: not JSON: ${String(event.data).slice(0, 200)}`);
          return;
        }
        if (message.MsgType !== "RtnDepthMarketData") {
          recent.push([this.name, message]);
          if (recent.length > 200) recent.shift();
        }
        if (message.MsgType === "Ping") {
          this.send({ MsgType: "Pong" });
          return;
        }
        this.handlers.message(message);
      };
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (!wasOpen) this.failures += 1;
        this.setState("closed", event.reason || (wasOpen ? `closed (${event.code})` : "cannot connect"));
        this.handlers.close(wasOpen, event);
        if (!this.suspended) this.retry();
      };
    }
    // A page put in the back-forward cache must not keep its sessions on the server.
    suspend() {
      this.suspended = true;
      clearTimeout(this.timer);
      if (this.ws) this.ws.close(1000, "page hidden");
    }
    resume() {
      if (!this.suspended) return;
      this.suspended = false;
      this.delay = 1000;
      if (!this.ws) this.connect();
    }
    restart() {
      if (this.ws) this.ws.close(1000, "a new session");
      else this.connect();
    }
    retry() {
      const delay = this.delay;
      this.delay = Math.min(this.delay * 2, 10000);
      this.timer = setTimeout(() => this.connect(), delay);
    }
    send(message) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      this.ws.send(JSON.stringify(message));
      return true;
    }
    request(message) {
      const id = this.requestId++;
      return this.send({ ...message, RequestID: id }) ? id : 0;
    }
    get isOpen() {
      return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
    }
    setState(state, detail) {
      const node = $(`#${this.name}-status`);
      node.dataset.state = state;
      $(".status-text", node).textContent = detail && state === "closed" ? `${state}: ${detail}` : state;
    }
  }

  const okInfo = (info) => !info || !info.ErrorID;
  const infoText = (info) => (info ? `${info.ErrorID} ${info.ErrorMsg || ""}`.trim() : "");

  // ---------------------------------------------------------------- quote board
  const board = {
    ids: [],                // the board's instruments, in order
    quotes: new Map(),      // id -> latest DepthMarketData
    decimals: new Map(),    // id -> decimals seen in its prices
    rows: new Map(),        // id -> <tr>
    errors: new Map(),      // id -> subscribe error text
    flashes: 0,
  };
  const COLUMNS = [
    ["LastPrice", "price"], ["Change", "change"], ["BidPrice1", "bid"], ["AskPrice1", "ask"],
    ["Volume", "int"], ["OpenInterest", "int"], ["UpdateTime", "time"],
  ];
  const STORE_KEY = "ctpshim.instruments";

  const saveIds = () => {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(board.ids));
    } catch (error) { /* storage may be off */ }
  };
  const loadIds = () => {
    try {
      const ids = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
      return Array.isArray(ids) ? ids.filter((id) => typeof id === "string" && validId(id)) : [];
    } catch (error) {
      return [];
    }
  };

  const boardMessage = (text) => {
    const node = $("#board-message");
    node.textContent = text || "";
    node.hidden = !text;
  };

  const priceText = (id, value) => (hasPrice(value) ? fixed(value, board.decimals.get(id) || 0) : "-");

  const referencePrice = (q) => (hasPrice(q.PreSettlementPrice) ? q.PreSettlementPrice
    : hasPrice(q.PreClosePrice) ? q.PreClosePrice : 0);

  // [text, value, secondary text]: value (a number or null) decides the flash's colour
  function cellValue(id, q, field) {
    switch (field) {
      case "LastPrice":
        return [priceText(id, q.LastPrice), hasPrice(q.LastPrice) ? q.LastPrice : null, ""];
      case "Change": {
        const ref = referencePrice(q);
        if (!hasPrice(q.LastPrice) || !ref) return ["-", null, ""];
        const change = q.LastPrice - ref;
        const sign = change > 0 ? "+" : "";
        const pct = (change / ref) * 100;
        return [`${sign}${fixed(change, board.decimals.get(id) || 0)}`, change, `${sign}${pct.toFixed(2)}%`];
      }
      case "BidPrice1":
      case "AskPrice1": {
        const side = field === "BidPrice1" ? "Bid" : "Ask";
        const price = q[`${side}Price1`];
        if (!hasPrice(price)) return ["-", null, ""];
        return [priceText(id, price), price, `×${q[`${side}Volume1`] || 0}`];
      }
      case "Volume":
      case "OpenInterest":
        return hasNumber(q[field]) ? [grouped(Math.round(q[field])), q[field], ""] : ["-", null, ""];
      case "UpdateTime": {
        const ms = String(q.UpdateMillisec || 0).padStart(3, "0");
        return [q.UpdateTime ? `${q.UpdateTime}.${ms}` : "-", null, ""];
      }
      default:
        return ["-", null, ""];
    }
  }

  function flash(cell, up) {
    cell.classList.remove("flash-up", "flash-down");
    void cell.offsetWidth; // restart the animation
    cell.classList.add(up ? "flash-up" : "flash-down");
    clearTimeout(cell._flashTimer);
    cell._flashTimer = setTimeout(() => cell.classList.remove("flash-up", "flash-down"), 900);
    const row = cell.closest("tr");
    row.dataset.flashes = String(Number(row.dataset.flashes || 0) + 1);
    board.flashes += 1;
  }

  function makeRow(id) {
    const row = el("tr", { "data-instrument": id, "data-ticks": "0", "data-flashes": "0", tabindex: "0" });
    row.append(el("td", { class: "left id", "data-field": "InstrumentID" }, id));
    for (const [field, kind] of COLUMNS) row.append(el("td", { "data-field": field, class: kind }, "-"));
    const actions = el("td", { class: "actions" });
    const remove = el("button", { type: "button", class: "remove", "data-action": "remove", "data-instrument": id,
      title: `unsubscribe ${id}`, "aria-label": `unsubscribe ${id}` }, "×");
    actions.append(remove);
    row.append(actions);
    row.addEventListener("click", (event) => {
      if (event.target.closest("button")) return;
      selectInstrument(id);
    });
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") selectInstrument(id);
    });
    remove.addEventListener("click", () => removeInstrument(id));
    return row;
  }

  function renderRow(id) {
    const row = board.rows.get(id);
    const q = board.quotes.get(id);
    if (!row) return;
    const error = board.errors.get(id);
    row.classList.toggle("error", Boolean(error));
    row.title = error || "";
    if (!q) {
      if (error) $('[data-field="LastPrice"]', row).textContent = "error";
      return;
    }
    for (const [field] of COLUMNS) {
      const cell = $(`[data-field="${field}"]`, row);
      const [text, value, sub] = cellValue(id, q, field);
      if (field === "Change") {
        cell.classList.toggle("up", value !== null && value > 0);
        cell.classList.toggle("down", value !== null && value < 0);
      }
      if (cell._text !== text + sub) {
        const previous = cell._value;
        cell._text = text + sub;
        cell.textContent = text;
        if (sub) cell.append(el("span", { class: field === "Change" ? "pct" : "vol" }, sub));
        if (value !== null && previous !== undefined && previous !== null && value !== previous) {
          flash(cell, value > previous);
        }
      }
      cell._value = value;
    }
    const last = $('[data-field="LastPrice"]', row);
    const ref = referencePrice(q);
    last.classList.toggle("up", hasPrice(q.LastPrice) && ref > 0 && q.LastPrice > ref);
    last.classList.toggle("down", hasPrice(q.LastPrice) && ref > 0 && q.LastPrice < ref);
  }

  function refreshEmpty() {
    $("#quotes-empty").hidden = board.ids.length > 0;
  }

  function addInstruments(ids) {
    const bad = ids.filter((id) => !validId(id));
    if (bad.length) {
      boardMessage(`not an instrument ID: ${bad.join(", ")} (letters, digits, '.', '_' or '-')`);
      return;
    }
    boardMessage("");
    const fresh = ids.filter((id) => !board.ids.includes(id));
    for (const id of fresh) {
      board.ids.push(id);
      const row = makeRow(id);
      board.rows.set(id, row);
      $("#quote-rows").append(row);
    }
    refreshEmpty();
    refreshOrderInstruments();
    saveIds();
    if (fresh.length && md.online) md.link.send({ MsgType: "SubscribeMarketData", InstrumentID: fresh });
    if (!chart.instrument && board.ids.length) selectInstrument(board.ids[0]);
  }

  function removeInstrument(id) {
    board.ids = board.ids.filter((x) => x !== id);
    board.rows.get(id)?.remove();
    board.rows.delete(id);
    board.quotes.delete(id);
    board.errors.delete(id);
    ticks.delete(id);
    bars.delete(id);
    if (md.online) md.link.send({ MsgType: "UnSubscribeMarketData", InstrumentID: [id] });
    refreshEmpty();
    refreshOrderInstruments();
    saveIds();
    if (chart.instrument === id) selectInstrument(board.ids[0] || "");
  }

  // ---------------------------------------------------------------- ticks and bars
  const MAX_TICKS = 4000;
  const MAX_BARS = 1000;
  const ticks = new Map();   // id -> [{last, volume, time}]
  const bars = new Map();    // id -> [{key, time, open, high, low, close, volume, startVolume}]

  function recordTick(id, q) {
    if (!hasPrice(q.LastPrice)) return false;
    const series = ticks.get(id) || [];
    ticks.set(id, series);
    const time = `${q.UpdateTime || ""}.${String(q.UpdateMillisec || 0).padStart(3, "0")}`;
    const previous = series[series.length - 1];
    if (previous && previous.time === time && previous.volume === q.Volume && previous.last === q.LastPrice) {
      return false; // the same snapshot again (a resubscription)
    }
    series.push({ last: q.LastPrice, volume: q.Volume || 0, time });
    if (series.length > MAX_TICKS) series.splice(0, series.length - MAX_TICKS);

    const minute = (q.UpdateTime || "").slice(0, 5);
    const key = `${q.ActionDay || q.TradingDay || ""} ${minute}`;
    const list = bars.get(id) || [];
    bars.set(id, list);
    const bar = list[list.length - 1];
    const priorVolume = previous ? previous.volume : q.Volume || 0;
    if (bar && bar.key === key) {
      bar.high = Math.max(bar.high, q.LastPrice);
      bar.low = Math.min(bar.low, q.LastPrice);
      bar.close = q.LastPrice;
      bar.volume = Math.max(0, (q.Volume || 0) - bar.startVolume);
    } else if (!bar || key > bar.key) {
      list.push({ key, time: minute, open: q.LastPrice, high: q.LastPrice, low: q.LastPrice, close: q.LastPrice,
        startVolume: priorVolume, volume: Math.max(0, (q.Volume || 0) - priorVolume) });
      if (list.length > MAX_BARS) list.splice(0, list.length - MAX_BARS);
    }
    return true;
  }

  // ---------------------------------------------------------------- market-data socket
  const md = {
    online: false,
    link: null,
    ticksReceived: 0,
  };

  function onMdMessage(m) {
    switch (m.MsgType) {
      case "RspUserLogin":
        if (!okInfo(m.RspInfo)) {
          md.link.setState("closed", `login refused: ${infoText(m.RspInfo)}`);
          return;
        }
        md.online = true;
        md.link.setState("online");
        if (board.ids.length) md.link.send({ MsgType: "SubscribeMarketData", InstrumentID: board.ids });
        break;
      case "RspSubMarketData": {
        const id = m.SpecificInstrument && m.SpecificInstrument.InstrumentID;
        if (!id) {
          if (!okInfo(m.RspInfo)) boardMessage(`subscribe: ${infoText(m.RspInfo)}`);
          break;
        }
        if (okInfo(m.RspInfo)) board.errors.delete(id);
        else board.errors.set(id, `subscribe ${id}: ${infoText(m.RspInfo)}`);
        if (!okInfo(m.RspInfo)) boardMessage(board.errors.get(id));
        renderRow(id);
        break;
      }
      case "RspUnSubMarketData":
        break;
      case "FrontDisconnected":
        md.link.setState("closed", `the source is down (${m.Reason}); the server reconnects`);
        break;
      case "RtnDepthMarketData": {
        const q = m.DepthMarketData;
        if (!q || !q.InstrumentID || !board.rows.has(q.InstrumentID)) break;
        const id = q.InstrumentID;
        md.ticksReceived += 1;
        if ($("#md-status").dataset.state !== "online") md.link.setState("online");
        for (const field of ["LastPrice", "BidPrice1", "AskPrice1", "PreSettlementPrice"]) {
          if (hasPrice(q[field])) {
            board.decimals.set(id, Math.max(board.decimals.get(id) || 0, decimalsOf(q[field])));
          }
        }
        board.quotes.set(id, q);
        board.errors.delete(id);
        const row = board.rows.get(id);
        row.dataset.ticks = String(Number(row.dataset.ticks) + 1);
        renderRow(id);
        if (recordTick(id, q) && id === chart.instrument) chart.schedule();
        if (id === $("#order-instrument").value && !$("#order-price").value && hasPrice(q.LastPrice)) {
          $("#order-price").value = q.LastPrice;
        }
        break;
      }
      default:
        if (m.RspInfo && m.RspInfo.ErrorID) boardMessage(`${m.MsgType || "server"}: ${infoText(m.RspInfo)}`);
    }
  }

  // ---------------------------------------------------------------- chart
  const niceStep = (raw) => {
    if (!(raw > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
  };
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  const chart = {
    instrument: "",
    mode: "ticks",
    draws: 0,
    pending: false,
    canvas: null,
    schedule() {
      if (this.pending) return;
      this.pending = true;
      const run = () => {
        this.pending = false;
        this.draw();
      };
      if (document.hidden) setTimeout(run, 100);
      else requestAnimationFrame(run);
    },
    draw() {
      const canvas = this.canvas;
      const ratio = window.devicePixelRatio || 1;
      const width = canvas.clientWidth;
      const height = canvas.clientHeight;
      if (!width || !height) return;
      if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
      }
      const g = canvas.getContext("2d");
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, width, height);
      const id = this.instrument;
      const decimals = board.decimals.get(id) || 0;
      const series = this.mode === "bars" ? bars.get(id) || [] : ticks.get(id) || [];
      $("#chart-empty").hidden = Boolean(id && series.length);
      if (id && !series.length) $("#chart-empty").textContent = `Waiting for ${id}'s first price…`;
      else if (!id) $("#chart-empty").textContent = "Select an instrument in the quote board.";
      canvas.dataset.points = String(series.length);
      if (!id || !series.length) return;

      const font = "12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
      g.font = font;
      const axisWidth = Math.max(56, g.measureText(fixed(series[series.length - 1].last ?? series[series.length - 1].close, decimals)).width + 16);
      const pad = { left: 8, right: axisWidth, top: 12, bottom: 22 };
      const volumeHeight = this.mode === "bars" ? Math.round((height - pad.top - pad.bottom) * 0.2) : 0;
      const plotW = width - pad.left - pad.right;
      const plotH = height - pad.top - pad.bottom - volumeHeight;
      if (plotW < 20 || plotH < 20) return;

      let visible;
      let slot;
      if (this.mode === "bars") {
        slot = Math.max(3, Math.min(14, plotW / Math.max(series.length, 30)));
        visible = series.slice(-Math.floor(plotW / slot));
      } else {
        visible = series.slice(-Math.max(2, Math.floor(plotW / 1.5)));
        slot = plotW / Math.max(visible.length - 1, 1);
      }
      let low = Infinity;
      let high = -Infinity;
      for (const point of visible) {
        low = Math.min(low, this.mode === "bars" ? point.low : point.last);
        high = Math.max(high, this.mode === "bars" ? point.high : point.last);
      }
      if (high === low) {
        const spread = Math.max(Math.abs(high) * 0.0005, Math.pow(10, -decimals));
        high += spread;
        low -= spread;
      }
      const margin = (high - low) * 0.08;
      high += margin;
      low -= margin;
      const y = (price) => pad.top + (high - price) / (high - low) * plotH;

      const last = series[series.length - 1];
      const lastPrice = this.mode === "bars" ? last.close : last.last;
      const ly = y(lastPrice);

      // grid on round prices, and the price axis (no label under the latest price's box)
      g.strokeStyle = css("--grid");
      g.fillStyle = css("--muted");
      g.lineWidth = 1;
      g.textBaseline = "middle";
      const step = Math.max(niceStep((high - low) / 5), Math.pow(10, -decimals));
      const labelDecimals = Math.max(decimals, decimalsOf(step));
      for (let price = Math.ceil(low / step) * step; price <= high; price += step) {
        const py = Math.round(y(price)) + 0.5;
        g.beginPath();
        g.moveTo(pad.left, py);
        g.lineTo(pad.left + plotW, py);
        g.stroke();
        if (Math.abs(py - ly) > 14) g.fillText(fixed(price, labelDecimals), pad.left + plotW + 6, py);
      }

      const up = css("--up");
      const down = css("--down");
      g.textBaseline = "alphabetic";
      if (this.mode === "bars") {
        const maxVolume = Math.max(1, ...visible.map((b) => b.volume));
        const bodyW = Math.max(1, Math.floor(slot * 0.7));
        visible.forEach((bar, i) => {
          const cx = Math.round(pad.left + i * slot + slot / 2) + 0.5;
          const colour = bar.close >= bar.open ? up : down;
          g.strokeStyle = colour;
          g.fillStyle = colour;
          g.beginPath();
          g.moveTo(cx, y(bar.high));
          g.lineTo(cx, y(bar.low));
          g.stroke();
          const top = y(Math.max(bar.open, bar.close));
          const bodyH = Math.max(1, y(Math.min(bar.open, bar.close)) - top);
          g.fillRect(Math.round(cx - bodyW / 2), top, bodyW, bodyH);
          const vh = (bar.volume / maxVolume) * (volumeHeight - 4);
          g.globalAlpha = 0.5;
          g.fillRect(Math.round(cx - bodyW / 2), pad.top + plotH + volumeHeight - vh, bodyW, vh);
          g.globalAlpha = 1;
        });
        g.fillStyle = css("--muted");
        const every = Math.max(1, Math.ceil(60 / slot));
        visible.forEach((bar, i) => {
          if (i % every === 0) g.fillText(bar.time, pad.left + i * slot, height - 6);
        });
      } else {
        g.strokeStyle = css("--accent");
        g.lineWidth = 1.5;
        g.beginPath();
        visible.forEach((point, i) => {
          const px = pad.left + i * slot;
          if (i === 0) g.moveTo(px, y(point.last));
          else g.lineTo(px, y(point.last));
        });
        g.stroke();
        g.lineWidth = 1;
        g.fillStyle = css("--muted");
        const labels = Math.max(1, Math.floor(plotW / 110));
        for (let i = 0; i < labels; i += 1) {
          const index = Math.floor((i / labels) * (visible.length - 1));
          g.fillText(visible[index].time.slice(0, 8), pad.left + index * slot, height - 6);
        }
      }

      // the latest price, boxed on the axis
      const q = board.quotes.get(id);
      const ref = q ? referencePrice(q) : 0;
      const colour = ref && lastPrice > ref ? up : ref && lastPrice < ref ? down : css("--accent");
      g.setLineDash([3, 3]);
      g.strokeStyle = colour;
      g.beginPath();
      g.moveTo(pad.left, Math.round(ly) + 0.5);
      g.lineTo(pad.left + plotW, Math.round(ly) + 0.5);
      g.stroke();
      g.setLineDash([]);
      g.fillStyle = colour;
      g.fillRect(pad.left + plotW + 2, ly - 9, pad.right - 4, 18);
      g.fillStyle = css("--on-accent");
      g.textBaseline = "middle";
      g.fillText(fixed(lastPrice, decimals), pad.left + plotW + 6, ly);
      this.draws += 1;
      canvas.dataset.draws = String(this.draws);
    },
  };

  function selectInstrument(id) {
    chart.instrument = id;
    for (const [other, row] of board.rows) row.classList.toggle("selected", other === id);
    $("#chart-title").textContent = id ? `Chart: ${id}` : "Chart";
    chart.canvas.dataset.instrument = id;
    const q = board.quotes.get(id);
    if (id) {
      $("#order-instrument").value = id;
      if (q && hasPrice(q.LastPrice) && !$("#order-price").value) $("#order-price").value = q.LastPrice;
    }
    chart.schedule();
  }

  function setChartMode(mode) {
    chart.mode = mode;
    chart.canvas.dataset.mode = mode;
    for (const button of document.querySelectorAll("#chart-mode button")) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
    }
    chart.schedule();
  }

  // ---------------------------------------------------------------- trading socket
  const ORDER_STATUS = {
    "0": "filled", "1": "partly filled, queued", "2": "partly filled", "3": "queued", "4": "not queued",
    "5": "cancelled", "a": "unknown", "b": "not touched", "c": "touched",
  };
  const DIRECTION = { "0": "buy", "1": "sell" };
  const OFFSET = { "0": "open", "1": "close", "2": "force close", "3": "close today", "4": "close yesterday" };
  const POSITION_SIDE = { "1": "net", "2": "long", "3": "short" };
  const ALIVE = new Set(["1", "3", "a", "b"]);

  const td = {
    link: null,
    loggedIn: false,
    login: null,          // the RspUserLogin body
    credentials: null,    // what the user typed, to log in again after a reconnect
    orderRef: 1,
    account: null,
    positions: [],
    orders: new Map(),    // FrontID:SessionID:OrderRef -> Order
    exchanges: new Map(), // instrument -> ExchangeID learnt from ticks, orders, positions or queries
    queue: [],            // queries waiting: CTP allows one in flight and about one a second
    inFlight: null,
    lastQuery: 0,
    queryTimer: 0,
    waiting: new Map(),   // RequestID -> {records, resolve}
    refreshTimer: 0,
  };

  const tdMessage = (text, error = true) => {
    const node = $("#td-message");
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(text) && error);
    node.hidden = !text;
  };

  const investor = () => ({
    BrokerID: td.login?.BrokerID || td.credentials?.BrokerID || "",
    InvestorID: td.login?.UserID || td.credentials?.UserID || "",
  });

  // One query at a time, at least a second apart; a -2/-3 answer (busy, too frequent) is retried.
  function query(msgType, bodyKey, body) {
    const key = `${msgType} ${JSON.stringify(body)}`;
    const existing = td.queue.find((q) => q.key === key);
    if (existing) return existing.promise;
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    td.queue.push({ key, msgType, bodyKey, body, resolve, promise, tries: 0 });
    pumpQueries();
    return promise;
  }

  function pumpQueries() {
    clearTimeout(td.queryTimer);
    if (td.inFlight || !td.queue.length || !td.loggedIn || !td.link.isOpen) return;
    const wait = td.lastQuery + 1050 - Date.now();
    if (wait > 0) {
      td.queryTimer = setTimeout(pumpQueries, wait);
      return;
    }
    const item = td.queue.shift();
    td.lastQuery = Date.now();
    const id = td.link.request({ MsgType: item.msgType, [item.bodyKey]: item.body });
    if (!id) {
      td.queue.unshift(item);
      return;
    }
    td.inFlight = { ...item, id, records: [], started: Date.now() };
    // an answer that never comes must not stall the queue
    td.queryTimer = setTimeout(() => {
      if (td.inFlight && td.inFlight.id === id) {
        td.inFlight.resolve(null);
        td.inFlight = null;
        pumpQueries();
      }
    }, 15000);
  }

  function onQueryAnswer(m, bodyKey) {
    const flight = td.inFlight;
    if (!flight || m.RequestID !== flight.id) return false;
    const code = m.RspInfo && m.RspInfo.ErrorID;
    if ((code === -2 || code === -3) && flight.tries < 10) {
      td.inFlight = null;
      td.queue.unshift({ ...flight, tries: flight.tries + 1 });
      pumpQueries();
      return true;
    }
    if (code) tdMessage(`${m.MsgType}: ${infoText(m.RspInfo)}`);
    if (m[bodyKey]) flight.records.push(m[bodyKey]);
    if (m.IsLast || code) {
      td.inFlight = null;
      clearTimeout(td.queryTimer);
      flight.resolve(code ? null : flight.records);
      pumpQueries();
    }
    return true;
  }

  function refreshAccount() {
    if (!td.loggedIn) return;
    query("ReqQryTradingAccount", "QryTradingAccount", { ...investor() }).then((records) => {
      if (records && records.length) {
        td.account = records[0];
        renderAccount();
      }
    });
  }

  function refreshPositions() {
    if (!td.loggedIn) return;
    query("ReqQryInvestorPosition", "QryInvestorPosition", { ...investor(), InstrumentID: "" }).then((records) => {
      if (records) {
        td.positions = records;
        for (const p of records) if (p.ExchangeID) td.exchanges.set(p.InstrumentID, p.ExchangeID);
        renderPositions();
      }
    });
  }

  function refreshOrders() {
    if (!td.loggedIn) return;
    query("ReqQryOrder", "QryOrder", { ...investor() }).then((records) => {
      if (records) {
        for (const order of records) keepOrder(order);
        renderOrders();
      }
    });
  }

  // After fills and cancels the books change: refresh them once the burst of reports is over.
  function refreshSoon() {
    clearTimeout(td.refreshTimer);
    td.refreshTimer = setTimeout(() => {
      refreshAccount();
      refreshPositions();
    }, 300);
  }

  const orderKey = (o) => `${o.FrontID}:${o.SessionID}:${String(o.OrderRef || "").trim()}`;

  function keepOrder(order) {
    td.orders.set(orderKey(order), order);
    if (order.ExchangeID) td.exchanges.set(order.InstrumentID, order.ExchangeID);
  }

  function onTdMessage(m) {
    switch (m.MsgType) {
      case "RspUserLogin":
        if (!okInfo(m.RspInfo)) {
          td.loggedIn = false;
          td.credentials = null;
          tdMessage(`login refused: ${infoText(m.RspInfo)}`);
          renderLogin();
          return;
        }
        td.loggedIn = true;
        td.login = m.RspUserLogin || {};
        td.orderRef = Math.max(td.orderRef, (parseInt(td.login.MaxOrderRef, 10) || 0) + 1);
        td.link.setState("online");
        tdMessage("");
        renderLogin();
        // the server has confirmed the day's settlement before answering (as both webctp dialects do)
        refreshAccount();
        refreshPositions();
        refreshOrders();
        return;
      case "FrontDisconnected":
        td.link.setState("closed", `the source's trader front is down (${m.Reason}); the server reconnects`);
        return;
      case "FrontConnected":
        return;
      case "RspQryTradingAccount":
        onQueryAnswer(m, "TradingAccount");
        return;
      case "RspQryInvestorPosition":
        onQueryAnswer(m, "InvestorPosition");
        return;
      case "RspQryOrder":
        onQueryAnswer(m, "Order");
        return;
      case "RspQryInstrument":
        onQueryAnswer(m, "Instrument");
        return;
      case "RtnOrder": {
        const order = m.Order;
        if (!order) return;
        const previous = td.orders.get(orderKey(order));
        keepOrder(order);
        renderOrders();
        if (!previous || previous.OrderStatus !== order.OrderStatus || previous.VolumeTraded !== order.VolumeTraded) {
          refreshSoon();
        }
        if (order.OrderSubmitStatus === "4" || (order.OrderStatus === "5" && order.StatusMsg && /拒绝|reject/i.test(order.StatusMsg))) {
          tdMessage(`order ${order.InstrumentID} rejected: ${order.StatusMsg}`);
        }
        return;
      }
      case "RtnTrade":
        refreshSoon();
        return;
      case "RspOrderInsert":
      case "ErrRtnOrderInsert":
        if (!okInfo(m.RspInfo)) tdMessage(`order refused: ${infoText(m.RspInfo)}`);
        return;
      case "RspOrderAction":
      case "ErrRtnOrderAction":
        if (!okInfo(m.RspInfo)) tdMessage(`cancel refused: ${infoText(m.RspInfo)}`);
        return;
      default:
        if (m.RspInfo && m.RspInfo.ErrorID) {
          tdMessage(`${m.MsgType || "server"}: ${infoText(m.RspInfo)}`);
        }
    }
  }

  function sendLogin() {
    const c = td.credentials;
    if (!c || !td.link.isOpen) return;
    tdMessage("logging in…", false);
    td.link.request({ MsgType: "ReqUserLogin", ReqUserLogin: { BrokerID: c.BrokerID, UserID: c.UserID, Password: c.Password } });
  }

  const tokenHint = (reason) => (pageQuery.get("token")
    ? `the server refused the token in this page's address (${reason})`
    : `this server needs a token (${reason}): open the page as ${location.pathname}?token=YOUR_TOKEN`);

  function onTdClose(wasOpen, event) {
    if (/token/i.test(event.reason || "")) tdMessage(tokenHint(event.reason));
    td.loggedIn = false;
    td.inFlight = null;
    clearTimeout(td.queryTimer);
    // queries waiting are kept; they go out after the next login
    renderLogin();
  }

  function renderLogin() {
    const account = $("#account");
    const open = td.link && td.link.isOpen;
    account.dataset.state = td.loggedIn ? "logged-in" : open ? "connected" : "offline";
    $("#login-form").hidden = td.loggedIn;
    $("#account-body").hidden = !td.loggedIn && !td.login;
    $("#login-button").disabled = !open;
    $("#logout-button").hidden = !td.loggedIn;
    $("#order-submit").disabled = !td.loggedIn;
    const unavailable = td.link && td.link.opened === 0 && td.link.failures >= 2;
    $("#account-unavailable").hidden = !unavailable;
    $("#account-name").textContent = td.login ? `${td.login.BrokerID || ""}/${td.login.UserID || ""}` : "";
  }

  function renderAccount() {
    const a = td.account || {};
    for (const cell of document.querySelectorAll("#account-summary [data-field]")) {
      const value = a[cell.dataset.field];
      cell.textContent = money(value);
      if (["PositionProfit", "CloseProfit"].includes(cell.dataset.field)) {
        cell.classList.toggle("up", hasNumber(value) && value > 0);
        cell.classList.toggle("down", hasNumber(value) && value < 0);
      }
    }
  }

  function renderPositions() {
    const body = $("#position-rows");
    body.textContent = "";
    // SHFE/INE answer one record per position date: sum them per instrument and side
    const grouped_ = new Map();
    for (const p of td.positions) {
      const key = `${p.InstrumentID}:${p.PosiDirection}:${p.HedgeFlag}`;
      const g = grouped_.get(key) || { InstrumentID: p.InstrumentID, ExchangeID: p.ExchangeID, PosiDirection: p.PosiDirection,
        Position: 0, TodayPosition: 0, UseMargin: 0, PositionProfit: 0 };
      g.Position += p.Position || 0;
      g.TodayPosition += p.TodayPosition || 0;
      g.UseMargin += hasNumber(p.UseMargin) ? p.UseMargin : 0;
      g.PositionProfit += hasNumber(p.PositionProfit) ? p.PositionProfit : 0;
      grouped_.set(key, g);
    }
    const rows = [...grouped_.values()].filter((p) => p.Position > 0);
    for (const p of rows) {
      const row = el("tr", { "data-position": `${p.InstrumentID}:${p.PosiDirection}`, "data-instrument": p.InstrumentID });
      row.append(el("td", { class: "left id" }, p.InstrumentID));
      row.append(el("td", { class: p.PosiDirection === "2" ? "up" : p.PosiDirection === "3" ? "down" : "" },
        POSITION_SIDE[p.PosiDirection] || p.PosiDirection));
      row.append(el("td", { "data-field": "Position" }, String(p.Position)));
      row.append(el("td", { "data-field": "TodayPosition" }, String(p.TodayPosition)));
      row.append(el("td", {}, money(p.UseMargin)));
      row.append(el("td", { class: p.PositionProfit > 0 ? "up" : p.PositionProfit < 0 ? "down" : "" }, money(p.PositionProfit)));
      const actions = el("td", { class: "actions" });
      const close = el("button", { type: "button", "data-action": "close-position", title: "fill the order form to close" }, "close…");
      close.addEventListener("click", () => {
        $("#order-instrument").value = p.InstrumentID;
        $("#order-direction").value = p.PosiDirection === "3" ? "0" : "1";
        // SHFE and INE keep today's lots apart: they are closed with CloseToday
        const today = ["SHFE", "INE"].includes(p.ExchangeID) && p.TodayPosition > 0;
        $("#order-offset").value = today ? "3" : "1";
        $("#order-volume").value = String(today ? p.TodayPosition : p.Position);
        const q = board.quotes.get(p.InstrumentID);
        if (q) {
          const price = p.PosiDirection === "3" ? q.AskPrice1 : q.BidPrice1;
          if (hasPrice(price)) $("#order-price").value = price;
        }
      });
      actions.append(close);
      row.append(actions);
      body.append(row);
    }
    $("#positions-empty").hidden = rows.length > 0;
  }

  function renderOrders() {
    const body = $("#order-rows");
    body.textContent = "";
    // newest first, in the order the page learnt of them (InsertDate is the trading day on DCE and
    // CZCE, the calendar day elsewhere: no order across exchanges)
    const orders = [...td.orders.values()].reverse();
    for (const o of orders) {
      const key = orderKey(o);
      const status = o.OrderStatus || "a";
      const row = el("tr", { "data-order-key": key, "data-status": status, "data-instrument": o.InstrumentID,
        "data-order-sys-id": String(o.OrderSysID || "").trim() });
      row.classList.toggle("done", !ALIVE.has(status));
      row.append(el("td", { class: "left" }, o.InsertTime || ""));
      row.append(el("td", { class: "left id" }, o.InstrumentID));
      row.append(el("td", { class: o.Direction === "0" ? "up" : "down" }, DIRECTION[o.Direction] || o.Direction));
      row.append(el("td", {}, OFFSET[(o.CombOffsetFlag || "")[0]] || o.CombOffsetFlag || ""));
      row.append(el("td", {}, priceText(o.InstrumentID, o.LimitPrice)));
      row.append(el("td", {}, `${o.VolumeTraded || 0} / ${o.VolumeTotalOriginal || 0}`));
      const rejected = o.OrderSubmitStatus === "4";
      const statusCell = el("td", { class: "left status-cell", "data-field": "OrderStatus", title: o.StatusMsg || "" },
        rejected ? "rejected" : ORDER_STATUS[status] || status);
      if (o.StatusMsg) statusCell.append(el("span", { class: "muted" }, ` ${o.StatusMsg}`));
      row.append(statusCell);
      const actions = el("td", { class: "actions" });
      if (ALIVE.has(status)) {
        const cancel = el("button", { type: "button", "data-action": "cancel", "data-order-key": key }, "Cancel");
        cancel.addEventListener("click", () => cancelOrder(o));
        actions.append(cancel);
      }
      row.append(actions);
      body.append(row);
    }
    $("#orders-empty").hidden = orders.length > 0;
  }

  async function exchangeOf(id) {
    const q = board.quotes.get(id);
    if (q && q.ExchangeID) return q.ExchangeID;
    if (td.exchanges.has(id)) return td.exchanges.get(id);
    const records = await query("ReqQryInstrument", "QryInstrument", { InstrumentID: id });
    const found = (records || []).find((i) => i.InstrumentID === id);
    if (found && found.ExchangeID) td.exchanges.set(id, found.ExchangeID);
    return found ? found.ExchangeID : "";
  }

  async function placeOrder() {
    const id = $("#order-instrument").value.trim();
    const price = Number($("#order-price").value);
    const volume = Number($("#order-volume").value);
    if (!validId(id)) return tdMessage(`not an instrument ID: ${JSON.stringify(id)}`);
    if (!Number.isFinite(price) || price <= 0) return tdMessage(`price ${JSON.stringify($("#order-price").value)} must be a number above 0`);
    if (!Number.isInteger(volume) || volume <= 0) return tdMessage(`volume ${JSON.stringify($("#order-volume").value)} must be a whole number of lots above 0`);
    const exchange = await exchangeOf(id);
    if (!exchange) return tdMessage(`unknown instrument ${id} (the server lists no such contract)`);
    const who = investor();
    const ref = String(td.orderRef++);
    const sent = td.link.request({
      MsgType: "ReqOrderInsert",
      InputOrder: {
        ...who, UserID: who.InvestorID, ExchangeID: exchange, InstrumentID: id, OrderRef: ref,
        LimitPrice: price, OrderPriceType: "2", Direction: $("#order-direction").value,
        CombOffsetFlag: $("#order-offset").value, CombHedgeFlag: "1", VolumeTotalOriginal: volume,
        TimeCondition: "3", VolumeCondition: "1", MinVolume: 1, ContingentCondition: "1", ForceCloseReason: "0",
        IsAutoSuspend: 0, IsSwapOrder: 0,
      },
    });
    tdMessage(sent ? `order ${ref} sent: ${DIRECTION[$("#order-direction").value]} ${volume} ${id} at ${price}` : "not connected",
      !sent);
  }

  function cancelOrder(o) {
    const who = investor();
    const action = { ...who, UserID: who.InvestorID, ExchangeID: o.ExchangeID, InstrumentID: o.InstrumentID, ActionFlag: "0" };
    if (String(o.OrderSysID || "").trim()) action.OrderSysID = o.OrderSysID;
    else Object.assign(action, { FrontID: o.FrontID, SessionID: o.SessionID, OrderRef: o.OrderRef });
    const sent = td.link.request({ MsgType: "ReqOrderAction", InputOrderAction: action });
    tdMessage(sent ? `cancel of ${o.InstrumentID} order ${String(o.OrderRef).trim()} sent` : "not connected", !sent);
  }

  function refreshOrderInstruments() {
    const list = $("#order-instruments");
    list.textContent = "";
    for (const id of new Set([...board.ids, ...listed.ids])) list.append(el("option", { value: id }));
    for (const chip of document.querySelectorAll("#listed-ids button")) {
      chip.classList.toggle("on", board.ids.includes(chip.dataset.listed));
    }
  }

  // ---------------------------------------------------------------- the server's sources and instruments
  const MAX_CHIPS = 60;
  const listed = { ids: [], decimals: new Map(), exchanges: new Map() };

  function sourceName() {
    return pageQuery.get("source") || "";
  }

  async function loadSources() {
    let health;
    try {
      const answer = await fetch("/health", { cache: "no-store" });
      if (!answer.ok) return;
      health = await answer.json();
    } catch (error) {
      return; // a server without /health: no picker
    }
    const names = Object.keys((health && health.sources) || {});
    if (!names.length) return;
    const select = $("#source-select");
    select.textContent = "";
    const current = sourceName() || names[0];
    for (const name of names) {
      const option = el("option", { value: name }, name);
      if (name === current) option.selected = true;
      select.append(option);
    }
    $("#source-box").hidden = false;
    select.disabled = names.length < 2;
    select.addEventListener("change", () => {
      const query = new URLSearchParams(location.search);
      query.set("source", select.value);
      location.search = query.toString();
    });
  }

  async function loadSymbols() {
    const query = sourceName() ? `?source=${encodeURIComponent(sourceName())}` : "";
    let table;
    try {
      const answer = await fetch(`/symbols.json${query}`, { cache: "no-store" });
      if (!answer.ok) return;
      table = await answer.json();
    } catch (error) {
      return;
    }
    for (const entry of Object.values(table || {})) {
      if (!entry || typeof entry.ins_id !== "string" || entry.expired) continue;
      listed.ids.push(entry.ins_id);
      if (Number.isInteger(entry.price_decs)) listed.decimals.set(entry.ins_id, entry.price_decs);
      if (entry.exchange_id) listed.exchanges.set(entry.ins_id, entry.exchange_id);
    }
    for (const [id, decimals] of listed.decimals) {
      board.decimals.set(id, Math.max(board.decimals.get(id) || 0, decimals));
    }
    for (const [id, exchange] of listed.exchanges) if (!td.exchanges.has(id)) td.exchanges.set(id, exchange);
    renderListed();
    refreshOrderInstruments();
  }

  // A short list of what the source lists, one click to add (a long one, like a stock feed's, is left out).
  function renderListed() {
    const box = $("#listed-ids");
    box.textContent = "";
    if (!listed.ids.length || listed.ids.length > MAX_CHIPS) {
      $("#listed").hidden = true;
      return;
    }
    for (const id of listed.ids) {
      const chip = el("button", { type: "button", "data-listed": id, title: `subscribe ${id}` }, id);
      chip.classList.toggle("on", board.ids.includes(id));
      chip.addEventListener("click", () => (board.ids.includes(id) ? selectInstrument(id) : addInstruments([id])));
      box.append(chip);
    }
    $("#listed").hidden = false;
  }

  // ---------------------------------------------------------------- start
  function start() {
    chart.canvas = $("#chart");
    $("#subscribe-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const ids = splitIds($("#subscribe-input").value);
      if (!ids.length) return;
      addInstruments(ids);
      if (!$("#board-message").textContent) $("#subscribe-input").value = "";
    });
    for (const button of document.querySelectorAll("#chart-mode button")) {
      button.addEventListener("click", () => setChartMode(button.dataset.mode));
    }
    $("#login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      td.credentials = {
        BrokerID: $("#login-broker").value.trim(),
        UserID: $("#login-user").value.trim(),
        Password: $("#login-password").value,
      };
      if (!td.credentials.UserID) {
        tdMessage("UserID is empty");
        return;
      }
      sendLogin();
    });
    // webctp has no logout: a new connection is a new session
    $("#logout-button").addEventListener("click", () => {
      td.loggedIn = false;
      td.login = null;
      td.credentials = null;
      td.account = null;
      td.positions = [];
      td.orders.clear();
      td.queue = [];
      renderLogin();
      renderAccount();
      renderPositions();
      renderOrders();
      td.link.restart();
    });
    $("#order-form").addEventListener("submit", (event) => {
      event.preventDefault();
      placeOrder().catch((error) => tdMessage(String(error)));
    });
    if (typeof ResizeObserver === "function") new ResizeObserver(() => chart.schedule()).observe(chart.canvas);
    else window.addEventListener("resize", () => chart.schedule());

    md.link = new Link("md", "/md/", {
      open() {
        md.link.send({ MsgType: "ReqUserLogin", RequestID: md.link.requestId++, ReqUserLogin: { UserID: "", Password: "" } });
      },
      message: onMdMessage,
      close(wasOpen, event) {
        md.online = false;
        if (/token/i.test(event.reason || "")) boardMessage(tokenHint(event.reason));
      },
    });
    td.link = new Link("td", "/td/", {
      open() {
        renderLogin();
        sendLogin();
      },
      message: onTdMessage,
      close: onTdClose,
    });
    window.addEventListener("pagehide", () => {
      md.link.suspend();
      td.link.suspend();
    });
    window.addEventListener("pageshow", (event) => {
      if (!event.persisted) return;
      md.link.resume();
      td.link.resume();
    });
    setInterval(() => {
      if (!td.loggedIn || td.queue.length || td.inFlight) return;
      refreshAccount();
      if (td.positions.length) refreshPositions(); // their P/L follows the market
    }, 5000);

    const fromUrl = splitIds(pageQuery.get("instruments") || "");
    addInstruments(fromUrl.length ? fromUrl : loadIds());
    renderLogin();
    renderPositions();
    renderOrders();
    chart.schedule();
    loadSources();
    loadSymbols();
  }

  // For tests and the console: a snapshot of what the page holds.
  window.ctpshimPage = {
    state() {
      return {
        md: { state: $("#md-status").dataset.state, online: md.online, ticks: md.ticksReceived },
        td: { state: $("#td-status").dataset.state, loggedIn: td.loggedIn, login: td.login,
          queued: td.queue.length, inFlight: Boolean(td.inFlight) },
        instruments: [...board.ids],
        quotes: Object.fromEntries([...board.quotes].map(([id, q]) => [id, { LastPrice: q.LastPrice, UpdateTime: q.UpdateTime }])),
        flashes: board.flashes,
        chart: { instrument: chart.instrument, mode: chart.mode, draws: chart.draws,
          ticks: (ticks.get(chart.instrument) || []).length, bars: (bars.get(chart.instrument) || []).length },
        account: td.account,
        positions: td.positions.length,
        orders: [...td.orders.values()].map((o) => ({ key: orderKey(o), InstrumentID: o.InstrumentID,
          OrderStatus: o.OrderStatus, OrderSysID: o.OrderSysID, StatusMsg: o.StatusMsg })),
      };
    },
    messages: () => recent.map(([link, message]) => ({ link, ...message })),
    quote: (id) => (board.quotes.has(id) ? { ...board.quotes.get(id) } : null),
    bars: (id) => (bars.get(id || chart.instrument) || []).map((b) => ({ ...b })),
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
