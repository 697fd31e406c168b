// Small helpers for reading and building Boost.JSON values.
// GCC 12 miscompiles braced initialiser lists inside coroutines ("array used as initializer"),
// so coroutine code builds objects with Obj(...) and reads paths with At(...), never with
// nested braces.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace ralph {

/// The value at a path of keys, or nullptr.
template <typename... Keys>
const boost::json::value* At(const boost::json::value& v, Keys... keys)
{
    const boost::json::value* cur = &v;
    for (std::string_view key : {std::string_view(keys)...}) {
        if (!cur->is_object()) return nullptr;
        cur = cur->as_object().if_contains(key);
        if (!cur) return nullptr;
    }
    return cur;
}

inline std::string Str(const boost::json::value* v)
{
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

inline int64_t Int(const boost::json::value* v)
{
    if (!v) return 0;
    if (v->is_int64()) return v->as_int64();
    if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
    if (v->is_double()) {
        // Clamped: converting a double outside int64's range is undefined (found by fuzz_events:
        // "attempt": 1e300 in a session.status event).
        double d = v->as_double();
        if (d != d) return 0;
        if (d >= 9.2e18) return INT64_MAX;
        if (d <= -9.2e18) return INT64_MIN;
        return static_cast<int64_t>(d);
    }
    return 0;
}

inline double Real(const boost::json::value* v) { return v && v->is_number() ? v->to_number<double>() : 0.0; }

inline void Put(boost::json::object&) {}
template <typename V, typename... Rest>
void Put(boost::json::object& o, std::string_view key, V&& value, Rest&&... rest)
{
    o[key] = boost::json::value_from(std::forward<V>(value));
    Put(o, std::forward<Rest>(rest)...);
}

/// Obj("k1", v1, "k2", v2, ...)
template <typename... Args>
boost::json::object Obj(Args&&... args)
{
    boost::json::object o;
    Put(o, std::forward<Args>(args)...);
    return o;
}

}  // namespace ralph
