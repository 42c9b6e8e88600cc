package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Cache is the response cache replicas share in Redis (plain redis-server,
// no modules; go-redis). Redis down means slower, never wrong: every call
// is bounded by a short timeout, and after a failure the cache is skipped
// for a moment (answered from the replica's own state) before it is tried
// again.
type Cache struct {
	cl      *redis.Client
	limiter *redis_rate.Limiter
	ttl     time.Duration
	timeout time.Duration
	until   atomic.Int64 // unix nanoseconds: skip Redis until then (it failed)
	hits    atomic.Int64
	misses  atomic.Int64
	errs    atomic.Int64
}

// OpenCache connects to the Redis at url (redis://host:port/db); entries
// live for ttl.
func OpenCache(url string, ttl time.Duration) (*Cache, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis url %q: %w", url, err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 200*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	opt.MaxRetries = 0 // a failure falls back to the replica's own answer at once
	cl := redis.NewClient(opt)
	return &Cache{cl: cl, limiter: redis_rate.NewLimiter(cl), ttl: ttl, timeout: 100 * time.Millisecond}, nil
}

// Close closes the connections.
func (c *Cache) Close() error { return c.cl.Close() }

// skipFor is how long the cache is skipped after a failure.
const skipFor = time.Second

func (c *Cache) up() bool { return time.Now().UnixNano() >= c.until.Load() }

func (c *Cache) failed(err error) {
	c.errs.Add(1)
	c.until.Store(time.Now().Add(skipFor).UnixNano())
}

// Get returns the entry under key, false on a miss or when Redis is down.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, bool) {
	if !c.up() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	b, err := c.cl.Get(ctx, key).Bytes()
	switch {
	case err == nil:
		c.hits.Add(1)
		return b, true
	case errors.Is(err, redis.Nil):
		c.misses.Add(1)
	default:
		c.misses.Add(1)
		c.failed(err)
	}
	return nil, false
}

// Set stores b under key for the cache's ttl (best effort).
func (c *Cache) Set(ctx context.Context, key string, b []byte) {
	if !c.up() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.cl.Set(ctx, key, b, c.ttl).Err(); err != nil {
		c.failed(err)
	}
}

// Allow takes one request from the rate limit of id shared by every
// replica (GCRA in Redis, go-redis/redis_rate): rate per second, with
// burst. ok is false when Redis could not say (down, slow): the caller
// limits on its own then.
func (c *Cache) Allow(ctx context.Context, id string, rate float64, burst int) (allowed, ok bool) {
	if !c.up() || !(rate > 0) {
		return false, false
	}
	lim := redis_rate.Limit{Rate: int(rate), Burst: max(burst, 1), Period: time.Second}
	if rate < 1 { // one request every 1/rate seconds
		lim.Rate, lim.Period = 1, time.Duration(float64(time.Second)/rate)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.limiter.Allow(ctx, "rate:"+id, lim)
	if err != nil {
		c.failed(err)
		return false, false
	}
	return res.Allowed > 0, true
}

// Stats are the hits, misses and Redis errors so far.
func (c *Cache) Stats() (hits, misses, errs int64) {
	return c.hits.Load(), c.misses.Load(), c.errs.Load()
}
