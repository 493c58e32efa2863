-- Content negotiation at the edge: the Accept field reduced to the one representation the apps
-- will send for it, before the cache key and the upstream request (deploy/README.md, "The public
-- edge"). Both apps send Vary: Accept, and Nginx keeps one cache entry per distinct Accept value
-- it sees: with the field reduced to text/plain or application/json, a client can no longer make
-- a new entry (and an upstream fill) per made-up spelling.
--
-- The rule is the contract's (api/openapi.json, x-common.content-negotiation), implemented line
-- for line as py_service/app/negotiation.py and go_service/internal/httpapi/negotiation.go do:
-- each offer takes the q of the most specific range matching it (type/subtype over type/* over
-- */*, the higher q among equals), the highest q above 0 wins, ties and "nothing acceptable" go
-- to text. Elements that do not parse are ignored. nginx_test checks every case of the contract,
-- and generated ones, against both apps.

local M = {}

local TEXT, JSON = "text/plain", "application/json"
local OFFERS = { { "text", "plain", TEXT }, { "application", "json", JSON } }

local function is_token(s)
  return s ~= "" and s:find("^[!#$%%&'*+.^_`|~0-9A-Za-z%-]+$") ~= nil
end

local function is_quoted(s)
  -- "(?:[^"\\]|\\.)*" as a whole
  if #s < 2 or s:sub(1, 1) ~= '"' then
    return false
  end
  local i = 2
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" then
      if i == #s then
        return false
      end
      i = i + 2
    elseif c == '"' then
      return i == #s
    else
      i = i + 1
    end
  end
  return false
end

local function is_qvalue(s)
  -- 0(\.[0-9]{0,3})? | 1(\.0{0,3})?
  return s == "0" or s == "1" or s:find("^0%.[0-9]?[0-9]?[0-9]?$") ~= nil
    or s:find("^1%.0?0?0?$") ~= nil
end

local function trim(s)
  return (s:gsub("^[ \t]+", ""):gsub("[ \t]+$", ""))
end

-- text split at sep, except inside quoted strings (with backslash escapes).
local function split(text, sep)
  local parts, start, quoted, escaped = {}, 1, false, false
  for i = 1, #text do
    local c = text:sub(i, i)
    if escaped then
      escaped = false
    elseif quoted and c == "\\" then
      escaped = true
    elseif c == '"' then
      quoted = not quoted
    elseif c == sep and not quoted then
      parts[#parts + 1] = text:sub(start, i - 1)
      start = i + 1
    end
  end
  parts[#parts + 1] = text:sub(start)
  return parts
end

-- One Accept element as { type, subtype, has_parameters, q }, or nil when it does not parse.
local function parse_element(element)
  local parts = split(element, ";")
  local media_type, subtype = trim(parts[1]):match("^([^/]*)/(.*)$")
  if not media_type or not is_token(media_type) or not is_token(subtype) then
    return nil
  end
  if media_type == "*" and subtype ~= "*" then
    return nil
  end
  local q, has_parameters, weighted = 1, false, false
  for i = 2, #parts do
    local parameter = trim(parts[i])
    if parameter ~= "" then -- parameters = *( OWS ";" OWS [ parameter ] )
      local name, value = parameter:match("^([^=]*)=(.*)$")
      if weighted or not name or not is_token(name) then
        return nil -- nothing may follow the weight
      end
      if name:lower() == "q" then
        if not is_qvalue(value) then
          return nil
        end
        q, weighted = tonumber(value), true
      elseif is_token(value) or is_quoted(value) then
        has_parameters = true
      else
        return nil
      end
    end
  end
  return { media_type:lower(), subtype:lower(), has_parameters, q }
end

-- The q of the most specific range matching the offer; 0 when none does.
local function weight(ranges, offer_type, offer_subtype)
  local best_specificity, q = -1, 0
  for _, r in ipairs(ranges) do
    if not r[3] then
      local specificity
      if r[1] == offer_type and r[2] == offer_subtype then
        specificity = 2
      elseif r[1] == offer_type and r[2] == "*" then
        specificity = 1
      elseif r[1] == "*" and r[2] == "*" then
        specificity = 0
      end
      if specificity and (specificity > best_specificity
          or (specificity == best_specificity and r[4] > q)) then
        best_specificity, q = specificity, r[4]
      end
    end
  end
  return q
end

--- The media type to send for an Accept field value (nil: no field): text/plain or
-- application/json.
function M.preferred(accept)
  if accept == nil or accept == "" then
    return TEXT
  end
  local ranges = {}
  for _, element in ipairs(split(accept, ",")) do
    ranges[#ranges + 1] = parse_element(element)
  end
  local best, best_weight = TEXT, 0
  for _, offer in ipairs(OFFERS) do
    local w = weight(ranges, offer[1], offer[2])
    if w > best_weight then
      best, best_weight = offer[3], w
    end
  end
  return best
end

--- Replaces the request's Accept with the representation it chooses, on the routes that
-- negotiate (/time and /static-text under any prefix), and returns that representation ("" on
-- the other routes, whose Accept is passed on as it came: the metrics' own format negotiation).
-- For set_by_lua: $http_accept joins several Accept fields with commas, as the apps do.
function M.reduce_accept()
  local uri = ngx.var.uri
  if uri:sub(-5) ~= "/time" and uri:sub(-12) ~= "/static-text" then
    return ""
  end
  local chosen = M.preferred(ngx.var.http_accept)
  ngx.req.set_header("Accept", chosen)
  return chosen
end

return M
