-- Prometheus counters and histograms kept in an Nginx shared dictionary, one set for all worker
-- processes, written in the log phase and read by a scrape.
--
-- The interface is that of nginx-lua-prometheus (knyar/nginx-lua-prometheus, the library the field
-- uses for this): init(dict_name), :counter(name, help, label_names),
-- :histogram(name, help, label_names, buckets), metric:inc(value, label_values),
-- metric:observe(value, label_values), :collect(). That library is distributed through GitHub and
-- LuaRocks, neither reachable here, and Debian does not package it; this is the subset the stack
-- uses, so switching to it later changes no caller.
--
-- Exactness: every update is one ngx.shared.DICT:incr, atomic across workers (the dictionary's
-- mutex), made synchronously while the request is logged: nothing is buffered, sampled or sent
-- over a lossy channel. The one way to lose a count is a full dictionary evicting series; that is
-- counted in nginx_metric_errors_total (which a test asserts stays 0) and the dictionary is sized
-- far above the bounded series count (deploy/nginx/nginx.conf).
--
-- Exposition: the Prometheus text format 0.0.4
-- (https://prometheus.io/docs/instrumenting/exposition_formats/).

local ngx = ngx
local concat, sort, format = table.concat, table.sort, string.format

local Prometheus = {}
Prometheus.__index = Prometheus

local Metric = {}
Metric.__index = Metric

local SMALLEST_NORMAL = 2.2250738585072014e-308
local DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
local ERRORS = "nginx_metric_errors_total"

-- Label values may hold any byte; the text format escapes backslash, double quote and newline.
local function escape(value)
  return (tostring(value):gsub("\\", "\\\\"):gsub('"', '\\"'):gsub("\n", "\\n"))
end

-- The first `precision` of the significant digits `exact`, rounded half to even as Go rounds
-- them, and 1 when rounding carried into a new leading digit (9.96 -> 10.0), else 0.
local function round_half_even(exact, precision)
  local head = exact:sub(1, precision)
  local next_digit = exact:byte(precision + 1) - 48
  local tie = next_digit == 5 and not exact:find("[1-9]", precision + 2)
  if next_digit < 5 or (tie and head:byte(precision) % 2 == 0) then
    return head, 0
  end
  -- One more in the last place: the last digit below 9 goes up, the 9s after it become 0s.
  local prefix, digit, nines = head:match("^(.-)([0-8]?)(9*)$")
  if digit == "" then
    return "1" .. string.rep("0", precision - 1), 1
  end
  return prefix .. string.char(digit:byte() + 1) .. string.rep("0", #nines), 0
end

-- A number as Prometheus' Go client writes it (strconv.FormatFloat(value, 'g', -1, 64)): the
-- shortest decimal that reads back as the value, in exponent form below 1e-4 and from 1e6 on:
-- "1", "0.1", "2.5e-05", "1.234567e+06", "+Inf". For a bucket bound this is the label string
-- (le) every exposer of the stack writes (api/metrics.json): "%.17g" wrote 0.1 as
-- "0.10000000000000001", which a query on {le="0.1"} does not select.
local function number(value)
  if value ~= value then
    return "NaN"
  elseif value == math.huge then
    return "+Inf"
  elseif value == -math.huge then
    return "-Inf"
  elseif value == 0 then
    return "0"
  end
  local sign, digits, exponent
  if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
    -- An integer (every count): its own digits are exact and, less trailing zeros, the shortest.
    sign, digits = value < 0 and "-" or "", format("%d", math.abs(value))
    exponent = #digits - 1
  else
    -- The value's decimal digits (LuaJIT formats them exactly), then the fewest that read back
    -- as the value. 15 always do when fewer can (a double holds 15.9 digits; a subnormal fewer),
    -- with zeros after them; else 16 or 17 (17 always do). Not "%.Ne": LuaJIT rounds an exact
    -- tie up where Go rounds it to even (709352321340990.25: ...902e+14, not ...903e+14).
    local first, rest
    sign, first, rest, exponent = format("%.40e", value):match("^(-?)(%d)%.(%d+)e([-+]%d+)$")
    exponent = tonumber(exponent)
    for precision = math.abs(value) < SMALLEST_NORMAL and 1 or 15, 17 do
      local carry
      digits, carry = round_half_even(first .. rest, precision)
      if tonumber(format("%s%s.%se%d", sign, digits:sub(1, 1), digits:sub(2), exponent + carry)) == value then
        exponent = exponent + carry
        break
      end
    end
  end
  digits = digits:gsub("0+$", "")
  if exponent < -4 or exponent >= 6 then
    local fraction = #digits > 1 and "." .. digits:sub(2) or ""
    return format("%s%s%se%s%02d", sign, digits:sub(1, 1), fraction, exponent < 0 and "-" or "+", math.abs(exponent))
  end
  local point = exponent + 1 -- digits before the decimal point
  if point <= 0 then
    return sign .. "0." .. string.rep("0", -point) .. digits
  elseif point >= #digits then
    return sign .. digits .. string.rep("0", point - #digits)
  end
  return sign .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end

-- 'a="1",b="2"' for the given names and values; nil and a message when they do not pair up.
local function label_pairs(names, values)
  values = values or {}
  if #values ~= #names then
    return nil, format("expected %d label values, got %d", #names, #values)
  end
  local parts = {}
  for i, name in ipairs(names) do
    parts[i] = name .. '="' .. escape(values[i]) .. '"'
  end
  return concat(parts, ",")
end

--- Opens the metrics kept in the shared dictionary `dict_name` (a lua_shared_dict).
-- Call once per worker (init_worker_by_lua*) or at module load; raises when the dictionary does
-- not exist, a configuration error that must stop Nginx from serving without metrics.
function Prometheus.init(dict_name)
  local dict = ngx.shared[dict_name]
  if not dict then
    error("no lua_shared_dict named " .. tostring(dict_name), 2)
  end
  local self = setmetatable({ dict = dict, metrics = {}, order = {} }, Prometheus)
  self.errors = self:counter(ERRORS, "Updates to Nginx's metrics that failed (a full dictionary, wrong labels).", {})
  return self
end

function Prometheus:register(kind, name, help, label_names, buckets)
  if self.metrics[name] then
    error("metric " .. name .. " registered twice", 3)
  end
  -- Each bucket's le label, formatted once here rather than on every observation.
  local bucket_labels = {}
  for i, upper in ipairs(buckets or {}) do
    bucket_labels[i] = 'le="' .. number(upper) .. '"'
  end
  local metric = setmetatable({
    prometheus = self,
    kind = kind,
    name = name,
    help = help,
    label_names = label_names or {},
    buckets = buckets,
    bucket_labels = bucket_labels,
  }, Metric)
  self.metrics[name] = metric
  self.order[#self.order + 1] = name
  return metric
end

--- A counter: a value that only goes up. label_names: list of strings.
function Prometheus:counter(name, help, label_names)
  return self:register("counter", name, help, label_names)
end

--- A histogram with the given upper bounds (seconds, ascending; +Inf is implied).
function Prometheus:histogram(name, help, label_names, buckets)
  buckets = buckets or DEFAULT_BUCKETS
  for i = 2, #buckets do
    if buckets[i] <= buckets[i - 1] then
      error("histogram " .. name .. ": buckets must ascend", 2)
    end
  end
  return self:register("histogram", name, help, label_names, buckets)
end

-- Adds value to one series; failures are counted, never raised (a request is never failed by
-- its own accounting).
function Prometheus:add(key, value)
  local _, err, forcible = self.dict:incr(key, value, 0)
  if err or forcible then
    ngx.log(ngx.ERR, "prometheus: ", err or "dictionary full, series evicted", " (", key, ")")
    self.dict:incr(ERRORS .. "{}", 1, 0)
  end
end

--- Adds value (default 1) to a counter's series for label_values.
function Metric:inc(value, label_values)
  local labels, err = label_pairs(self.label_names, label_values)
  if not labels then
    ngx.log(ngx.ERR, "prometheus: ", self.name, ": ", err)
    return self.prometheus:add(ERRORS .. "{}", 1)
  end
  self.prometheus:add(self.name .. "{" .. labels .. "}", value or 1)
end

--- Records one observation of value in a histogram's series for label_values.
-- Only the first bucket holding the value is incremented, and no count is kept: collect() makes
-- the buckets cumulative and takes the count from +Inf, so an observation costs two updates
-- whatever the number of buckets, and a scrape's count always equals its +Inf bucket.
function Metric:observe(value, label_values)
  local labels, err = label_pairs(self.label_names, label_values)
  value = tonumber(value)
  if not labels or not value then
    ngx.log(ngx.ERR, "prometheus: ", self.name, ": ", err or "not a number")
    return self.prometheus:add(ERRORS .. "{}", 1)
  end
  local le = 'le="+Inf"'
  for i, upper in ipairs(self.buckets) do
    if value <= upper then
      le = self.bucket_labels[i]
      break
    end
  end
  local p = self.prometheus
  local sep = labels == "" and "" or ","
  p:add(self.name .. "_bucket{" .. labels .. sep .. le .. "}", 1)
  p:add(self.name .. "_sum{" .. labels .. "}", value)
end

-- Splits a stored key 'name{labels}' into name and labels.
local function split_key(key)
  return key:match("^([^{]+){(.*)}$")
end

-- 'name{labels}', or just 'name' for a series without labels.
local function series_name(name, labels)
  if labels == "" then
    return name
  end
  return name .. "{" .. labels .. "}"
end

-- The histogram's lines for one label set, cumulative over its buckets. values: 'le="0.1"' ->
-- the observations in that bucket alone, and "_sum".
local function histogram_lines(metric, labels, values, out)
  local sep = labels == "" and "" or ","
  local cumulative = 0
  for _, le in ipairs(metric.bucket_labels) do
    cumulative = cumulative + (values[le] or 0)
    out[#out + 1] = format("%s_bucket{%s%s%s} %s", metric.name, labels, sep, le, number(cumulative))
  end
  cumulative = cumulative + (values['le="+Inf"'] or 0)
  out[#out + 1] = format('%s_bucket{%s%sle="+Inf"} %s', metric.name, labels, sep, number(cumulative))
  out[#out + 1] = format("%s %s", series_name(metric.name .. "_sum", labels), number(values._sum or 0))
  out[#out + 1] = format("%s %s", series_name(metric.name .. "_count", labels), number(cumulative))
end

--- A number as the text format writes it (Prometheus' Go client's way; nginx_test compares it
-- with the other exposers').
Prometheus.number = number

--- Renders every metric as the text exposition format. Returns the body (a string).
function Prometheus:metric_data()
  local series = {} -- metric name -> list of { labels, value }
  for _, key in ipairs(self.dict:get_keys(0)) do
    local name, labels = split_key(key)
    local value = self.dict:get(key)
    if name and value then
      series[name] = series[name] or {}
      series[name][#series[name] + 1] = { labels, value }
    end
  end
  local out = {}
  for _, name in ipairs(self.order) do
    local metric = self.metrics[name]
    out[#out + 1] = format("# HELP %s %s", name, metric.help)
    out[#out + 1] = format("# TYPE %s %s", name, metric.kind)
    if metric.kind == "counter" then
      local rows = series[name] or {}
      sort(rows, function(a, b) return a[1] < b[1] end)
      if #rows == 0 and #metric.label_names == 0 then
        rows = { { "", self.dict:get(name .. "{}") or 0 } }
      end
      for _, row in ipairs(rows) do
        out[#out + 1] = format("%s %s", series_name(name, row[1]), number(row[2]))
      end
    else
      -- Group the stored _bucket and _sum series by their label set (le taken out).
      local groups, order = {}, {}
      local function group(labels)
        if not groups[labels] then
          groups[labels] = {}
          order[#order + 1] = labels
        end
        return groups[labels]
      end
      for _, row in ipairs(series[name .. "_bucket"] or {}) do
        local labels, le = row[1]:match('^(.-),?(le="[^"]*")$')
        if labels then
          group(labels)[le] = row[2]
        end
      end
      for _, row in ipairs(series[name .. "_sum"] or {}) do
        group(row[1])._sum = row[2]
      end
      sort(order)
      for _, labels in ipairs(order) do
        histogram_lines(metric, labels, groups[labels], out)
      end
    end
  end
  out[#out + 1] = ""
  return concat(out, "\n")
end

--- Answers the current request with every metric (content_by_lua*).
function Prometheus:collect()
  ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
  ngx.print(self:metric_data())
end

return Prometheus
