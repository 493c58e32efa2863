-- Alertmanager's default receiver (nginx.conf, port 9145, /alerts): each notification is checked
-- to be a JSON object, put on one line (its insignificant white space left out) and handed to the
-- access log (log_format alert_notification) in $alert_notification.
--
-- Why the access log and not ngx.log: Nginx cuts every error-log line at 2,048 bytes
-- (NGX_MAX_ERROR_STR), and a notification of three alerts is longer, so it reached the log cut
-- mid-string (issue 28). An access-log line has no such limit: a notification up to the body limit
-- (1 MB) is one whole line that parses as JSON. A body that is not JSON (a cut one, say) is
-- refused with a 400, which Alertmanager reports as a failed notification.

local concat, format = table.concat, string.format

local M = {}

-- Alertmanager's JSON nests four deep; this bounds the recursion below.
local MAX_DEPTH = 32

local function skip_space(text, i)
  return text:find("[^ \t\r\n]", i) or #text + 1
end

-- The index after the string that starts at i (a double quote), or nil and why.
local function string_end(text, i)
  local j = i + 1
  while true do
    local k = text:find('["\\%z\1-\31]', j)
    if not k then
      return nil, "unterminated string"
    elseif text:byte(k) == 34 then -- the closing quote
      return k + 1
    elseif text:byte(k) ~= 92 then -- not a backslash: a raw control character
      return nil, "control character in a string"
    end
    local escape = text:sub(k + 1, k + 1)
    if escape == "u" and text:find("^%x%x%x%x", k + 2) then
      j = k + 6
    elseif escape ~= "" and escape ~= "u" and ('"\\/bfnrt'):find(escape, 1, true) then
      j = k + 2
    else
      return nil, "bad escape in a string"
    end
  end
end

-- The index after the number that starts at i (RFC 8259's grammar), or nil.
local function number_end(text, i)
  local j = text:match("^-?()", i)
  j = text:match("^0()", j) or text:match("^[1-9]%d*()", j)
  if not j then
    return nil
  end
  j = text:match("^%.%d+()", j) or j
  return text:match("^[eE][-+]?%d+()", j) or j
end

-- Appends the JSON value at i (after any white space) to out, less its insignificant white space.
-- Returns the index after it, or nil, why and where.
local function value(text, i, out, depth)
  i = skip_space(text, i)
  local c = text:sub(i, i)
  if c == '"' then
    local j, err = string_end(text, i)
    if not j then
      return nil, err, i
    end
    out[#out + 1] = text:sub(i, j - 1)
    return j
  elseif c ~= "{" and c ~= "[" then
    local j = number_end(text, i)
    for _, word in ipairs({ "true", "false", "null" }) do
      if not j and text:sub(i, i + #word - 1) == word then
        j = i + #word
      end
    end
    if not j then
      return nil, "expected a value", i
    end
    out[#out + 1] = text:sub(i, j - 1)
    return j
  end
  if depth == MAX_DEPTH then
    return nil, "nested too deep", i
  end
  local close = c == "{" and "}" or "]"
  out[#out + 1] = c
  i = skip_space(text, i + 1)
  if text:sub(i, i) == close then
    out[#out + 1] = close
    return i + 1
  end
  while true do
    if c == "{" then -- a member: its name, a colon, then its value
      if text:sub(i, i) ~= '"' then
        return nil, "expected a member name", i
      end
      local j, err = string_end(text, i)
      if not j then
        return nil, err, i
      end
      out[#out + 1] = text:sub(i, j - 1)
      i = skip_space(text, j)
      if text:sub(i, i) ~= ":" then
        return nil, "expected ':'", i
      end
      out[#out + 1] = ":"
      i = i + 1
    end
    local j, err, at = value(text, i, out, depth + 1)
    if not j then
      return nil, err, at
    end
    i = skip_space(text, j)
    local separator = text:sub(i, i)
    if separator == close then
      out[#out + 1] = close
      return i + 1
    elseif separator ~= "," then
      return nil, "expected ',' or '" .. close .. "'", i
    end
    out[#out + 1] = ","
    i = skip_space(text, i + 1)
  end
end

--- text as one line of JSON, or nil and why ("... at byte N") when it is not a JSON object.
function M.compact(text)
  local start = skip_space(text, 1)
  if text:sub(start, start) ~= "{" then
    return nil, format("not a JSON object at byte %d", start)
  end
  local out = {}
  local i, err, at = value(text, start, out, 0)
  if i and skip_space(text, i) <= #text then
    err, at = "text after the object", skip_space(text, i)
  end
  if err then
    return nil, format("%s at byte %d", err, at)
  end
  return concat(out)
end

--- Answers a POST of a notification (content_by_lua*): 200 and the notification in
-- $alert_notification for the access log, or 400 and why, with nothing logged.
function M.receive()
  ngx.req.read_body()
  -- In memory: nginx.conf gives the body a buffer as large as the largest accepted.
  local notification, err = M.compact(ngx.req.get_body_data() or "")
  ngx.header["Content-Type"] = "text/plain; charset=utf-8"
  if not notification then
    ngx.log(ngx.WARN, "alert notification refused: ", err)
    ngx.status = ngx.HTTP_BAD_REQUEST
    ngx.say("not logged: ", err)
    return
  end
  ngx.var.alert_notification = notification
  ngx.say("logged")
end

return M
