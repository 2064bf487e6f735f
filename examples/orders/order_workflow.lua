-- The order workflow from the seed: charge the payment through an activity, wait before
-- confirming (an hour, durably: the worker may restart meanwhile), then report the result.
--
-- Input: { order_id = "o-1", amount = 42.5, payment_url = "http://...", confirm_after = "1h" }
-- `payment_url` and `confirm_after` are optional (see payment.lua; tests shorten the wait).
local funcs = require("funcs")
local time = require("time")

local function main(order)
    if type(order) ~= "table" or not order.order_id then
        return nil, errors.new({
            kind = errors.INVALID,
            message = "the order must be a table with an order_id",
            retryable = false,
        })
    end

    local payment, err = funcs.call("app:charge_payment", order)
    if err then
        return nil, errors.wrap(err, "charging order " .. order.order_id)
    end

    time.sleep(order.confirm_after or "1h")

    return {
        order_id = order.order_id,
        status = "completed",
        transaction_id = payment.transaction_id,
        amount = payment.amount,
        confirmed_at = time.now():format_rfc3339(),
    }
end

return { main = main }
