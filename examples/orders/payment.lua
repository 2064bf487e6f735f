-- The charge_payment activity: POSTs the charge to the payment service at `order.payment_url`
-- and returns its transaction. Without a payment_url it simulates an approved charge, so the
-- example runs with nothing but a Temporal server.
local http_client = require("http_client")
local json = require("json")

local function charge(order)
    if not order.payment_url then
        return { transaction_id = "txn-" .. order.order_id, amount = order.amount or 0, simulated = true }
    end

    local body, encode_err = json.encode({ order_id = order.order_id, amount = order.amount or 0 })
    if encode_err then
        return nil, encode_err
    end
    local response, err = http_client.post(order.payment_url, {
        headers = { ["Content-Type"] = "application/json" },
        body = body,
        timeout = 10,
    })
    if err then
        return nil, err -- network failures are retryable
    end
    if response.status_code >= 500 then
        return nil, errors.new({
            kind = errors.UNAVAILABLE,
            message = "payment service answered " .. response.status_code,
            retryable = true,
        })
    end
    if response.status_code ~= 200 then
        return nil, errors.new({
            kind = errors.INVALID,
            message = "payment refused (" .. response.status_code .. "): " .. response.body,
            retryable = false,
        })
    end

    local result, decode_err = json.decode(response.body)
    if decode_err then
        return nil, decode_err
    end
    return { transaction_id = result.transaction_id, amount = order.amount or 0 }
end

return { charge = charge }
