#include "support/support.hpp"

#include <multiproc/context.hpp>
#include <multiproc/policies/resolve.hpp>

#include <type_traits>

using namespace multiproc;

namespace {
// A kind of the user's own, with its default, as design.md §3 allows.
namespace retries {
struct kind_t {};
struct none {
    using policy_kind = kind_t;
    static constexpr int count = 0;
};
template <int N>
struct up_to {
    using policy_kind = kind_t;
    static constexpr int count = N;
};
} // namespace retries
} // namespace

template <>
struct multiproc::default_policy<retries::kind_t> {
    using type = retries::none;
};

TEST_CASE("every kind resolves to its default when no policy is given", "[policies]") {
    using S = policy_set<>;
    STATIC_REQUIRE(std::is_same_v<S::start, start::fork>);
    STATIC_REQUIRE(std::is_same_v<S::daemon, daemon::no>);
    STATIC_REQUIRE(std::is_same_v<S::nested, nested::forbid>);
    STATIC_REQUIRE(std::is_same_v<S::transport, transport::pipe>);
    STATIC_REQUIRE(std::is_same_v<S::serialize, serialize::binary>);
    STATIC_REQUIRE(std::is_same_v<S::order, order::ordered>);
}

TEST_CASE("policies resolve by kind whatever their order", "[policies]") {
    using A = policy_set<transport::shm, daemon::yes, order::unordered, serialize::bitwise>;
    using B = policy_set<serialize::bitwise, order::unordered, daemon::yes, transport::shm>;
    STATIC_REQUIRE(std::is_same_v<A::transport, transport::shm>);
    STATIC_REQUIRE(std::is_same_v<A::daemon, daemon::yes>);
    STATIC_REQUIRE(std::is_same_v<A::order, order::unordered>);
    STATIC_REQUIRE(std::is_same_v<A::serialize, serialize::bitwise>);
    STATIC_REQUIRE(std::is_same_v<A::start, start::fork>);
    STATIC_REQUIRE(std::is_same_v<A::transport, B::transport>);
    STATIC_REQUIRE(std::is_same_v<A::daemon, B::daemon>);
    STATIC_REQUIRE(std::is_same_v<A::order, B::order>);
    STATIC_REQUIRE(std::is_same_v<A::serialize, B::serialize>);
    STATIC_REQUIRE(std::is_same_v<policy_t<kind::transport, daemon::yes, transport::socketpair>, transport::socketpair>);
    STATIC_REQUIRE(std::is_same_v<policy_set<daemon::yes, nested::allow, start::spawn>::nested, nested::allow>);
}

TEST_CASE("a kind of the user's own resolves to the given policy or its default", "[policies]") {
    STATIC_REQUIRE(policy_set<>::get<retries::kind_t>::count == 0);
    STATIC_REQUIRE(policy_set<daemon::yes, retries::up_to<3>>::get<retries::kind_t>::count == 3);
    STATIC_REQUIRE(policy_set<retries::up_to<2>, transport::shm>::transport::name == "shm");
}

TEST_CASE("the concepts accept each kind's policies and reject the others", "[policies]") {
    STATIC_REQUIRE(start_policy<start::fork>);
    STATIC_REQUIRE(start_policy<start::spawn>);
    STATIC_REQUIRE(start_policy<start::forkserver>);
    STATIC_REQUIRE(daemon_policy<daemon::yes>);
    STATIC_REQUIRE(daemon_policy<daemon::no>);
    STATIC_REQUIRE(nested_policy<nested::forbid>);
    STATIC_REQUIRE(nested_policy<nested::allow>);
    STATIC_REQUIRE_FALSE(nested_policy<daemon::yes>);
    STATIC_REQUIRE(transport_policy<transport::pipe>);
    STATIC_REQUIRE(transport_policy<transport::socketpair>);
    STATIC_REQUIRE(transport_policy<transport::shm>);
    STATIC_REQUIRE(serialize_policy<serialize::binary>);
    STATIC_REQUIRE(serialize_policy<serialize::bitwise>);
    STATIC_REQUIRE(order_policy<order::ordered>);
    STATIC_REQUIRE(order_policy<order::unordered>);
    STATIC_REQUIRE_FALSE(start_policy<daemon::yes>);
    STATIC_REQUIRE_FALSE(transport_policy<start::fork>);
    STATIC_REQUIRE_FALSE(policy<int>);
    STATIC_REQUIRE(policy<retries::none>);
    STATIC_REQUIRE(policy_of_kind<retries::none, retries::kind_t>);
}

TEST_CASE("a context hands its policies to the processes it makes", "[policies][context]") {
    STATIC_REQUIRE(context<>::start_method() == "fork");
    STATIC_REQUIRE(context<start::spawn>::start_method() == "spawn");
    STATIC_REQUIRE(context<daemon::yes, start::forkserver>::start_method() == "forkserver");
    STATIC_REQUIRE(std::is_same_v<context<daemon::yes, transport::shm>::policies::transport, transport::shm>);

    context<daemon::yes> dctx;
    auto d = dctx.process([] {});
    STATIC_REQUIRE(std::is_same_v<decltype(d), basic_process<daemon::yes>>);
    CHECK(d.daemon());

    context<> ctx;
    auto p = ctx.process([](int x) { std::_Exit(x); }, 7);
    CHECK_FALSE(p.daemon());
    p.start();
    p.join();
    CHECK(p.exitcode() == 7);

    context<start::spawn, daemon::yes> sctx;
    auto s = sctx.process([](int x) { std::_Exit(x); }, 8);
    STATIC_REQUIRE(std::is_same_v<decltype(s), basic_process<start::spawn, daemon::yes>>);
    CHECK(s.daemon());
    s.start();
    s.join();
    CHECK(s.exitcode() == 8);
}
