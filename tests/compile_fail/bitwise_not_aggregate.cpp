// expect: cannot look inside the message type T.*make it an aggregate of data, adapt it with Hana, or use cereal.*type_cannot_be_serialized_by<account, multiproc::(v[0-9]+_[0-9]+::)?serialize::bitwise>
#include <multiproc/pipe.hpp>
class account { // trivially copyable, but bitwise cannot see what its private members hold
public:
    account() = default;
    explicit account(long balance) : balance_(balance) {}
    long balance() const { return balance_; }

private:
    long balance_ = 0;
};
#ifndef MULTIPROC_COMPILE_FAIL
template <> // the opt-in: its bytes mean the same in another process
inline constexpr bool multiproc::serialize::enable_bitwise<account> = true;
#endif
int main() {
    auto ends = multiproc::pipe<account, multiproc::serialize::bitwise>();
    (void)ends;
}
