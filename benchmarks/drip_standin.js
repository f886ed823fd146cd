// A model provider that takes its time: an OpenAI-wire SSE stream dripped by nginx timers (njs 0.7).
//
// The role chunk goes out at once (time to first event measures the proxy, not the drip); then one
// content chunk ("word<i> ", one token) every $drip_interval_ms, $drip_tokens of them or the request's
// max_tokens if fewer (finish_reason "length" then, as a provider says); then the finish chunk, the usage
// chunk and [DONE] in one write. Each stream holds one pending timer and no other state
// than its counter, so thousands of open streams cost nginx little (benchmarks/drip_standin.py measures it).

function maxTokens(r) {
    try {
        var asked = JSON.parse(r.requestText || '{}').max_tokens;
        return typeof asked === 'number' && asked >= 0 ? asked : Infinity;
    } catch (e) {
        return Infinity;
    }
}

function stream(r) {
    var tokens = Number(r.variables.drip_tokens);
    var finish = 'stop';
    if (maxTokens(r) < tokens) {
        tokens = maxTokens(r);
        finish = 'length';
    }
    var every = Number(r.variables.drip_interval_ms);
    var head = 'data: {"id":"chatcmpl-drip","object":"chat.completion.chunk","created":1700000000,"model":"'
        + r.variables.drip_model + '","choices":[{"index":0,"delta":{';
    var sent = 0;

    r.status = 200;
    r.headersOut['Content-Type'] = 'text/event-stream';
    r.headersOut['Cache-Control'] = 'no-cache';
    r.sendHeader();
    r.send(head + '"role":"assistant","content":""},"finish_reason":null}]}\n\n');

    function tick() {
        if (sent < tokens) {
            r.send(head + '"content":"word' + sent + ' "},"finish_reason":null}]}\n\n');
            sent += 1;
            setTimeout(tick, every);
            return;
        }
        var prompt = Number(r.variables.drip_prompt_tokens);
        var usage = '{"prompt_tokens":' + prompt + ',"completion_tokens":' + tokens
            + ',"total_tokens":' + (prompt + tokens) + '}';
        r.send(head + '},"finish_reason":"' + finish + '"}]}\n\n'
            + head.slice(0, head.indexOf('"choices"')) + '"choices":[],"usage":' + usage + '}\n\n'
            + 'data: [DONE]\n\n');
        r.finish();
    }

    setTimeout(tick, every);
}

export default {stream};
