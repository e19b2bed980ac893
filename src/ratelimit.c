#include "bt/ratelimit.h"

#include <stdlib.h>
#include <string.h>

void bt_rate_limit_init(struct bt_rate_limit *rl, double rate, double now)
{
	rl->rate = rate > 0 ? rate : 0;
	rl->burst = rl->rate / 10 > 32768 ? rl->rate / 10 : 32768;
	rl->tokens = rl->burst;
	rl->last = now;
}

static void refill(struct bt_rate_limit *rl, double now)
{
	if (now > rl->last) {
		rl->tokens += (now - rl->last) * rl->rate;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last = now;
	}
}

size_t bt_rate_limit_take(struct bt_rate_limit *rl, double now, size_t want)
{
	if (!rl || rl->rate <= 0)
		return want;
	refill(rl, now);
	size_t n = rl->tokens >= (double)want ? want : (size_t)(rl->tokens > 0 ? rl->tokens : 0);
	rl->tokens -= (double)n;
	return n;
}

bool bt_rate_limit_take_all(struct bt_rate_limit *rl, double now, size_t n)
{
	if (!rl || rl->rate <= 0)
		return true;
	refill(rl, now);
	if (rl->tokens < (double)n)
		return false;
	rl->tokens -= (double)n;
	return true;
}

double bt_rate_limit_wait(const struct bt_rate_limit *rl, double now, size_t n)
{
	if (!rl || rl->rate <= 0)
		return 0;
	double have = rl->tokens + (now > rl->last ? (now - rl->last) * rl->rate : 0);
	double need = (double)n - have;
	return need <= 0 ? 0 : need / rl->rate;
}

int bt_rate_parse(const char *s, double *out)
{
	char *end;
	if (!(*s >= '0' && *s <= '9'))
		return -1;
	double v = strtod(s, &end);
	double mult = 1;
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M')
		mult = 1024.0 * 1024, end++;
	else if (*end == 'G')
		mult = 1024.0 * 1024 * 1024, end++;
	if (mult > 1 && *end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (!strcmp(end, "/s"))
		end += 2;
	if (*end || v <= 0 || v * mult < 1024 || v * mult > 1e12)
		return -1;
	*out = v * mult;
	return 0;
}

void bt_rate_limit_give_back(struct bt_rate_limit *rl, size_t n)
{
	if (rl && rl->rate > 0)
		rl->tokens += (double)n;
}
